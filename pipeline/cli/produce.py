"""`msm produce`: publish events from the command line, one id per line on stdout.

Payloads are validated before they are sent, with the same code as the Python publisher, and
sent in batches that wait once for Kafka's acks, so ``--count`` doubles as a quick load tool.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import click

from pipeline import headers as h
from pipeline.avro.records import RecordError
from pipeline.client.encoder import OutgoingEvent
from pipeline.client.ids import new_event_id
from pipeline.client.publisher import Publisher
from pipeline.errors import ConfigError
from pipeline.topology import load_topology, parse_duration

BATCH = 1000


class ProduceInputError(ConfigError):
    """A payload given to ``msm produce`` is not JSON or does not match the event's schema."""


def _parse_delay(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected {exc}, got {value!r}") from None


def _parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO 8601 time like 2030-01-01T12:00:00Z, got {value!r}"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # naive means UTC, as in payloads


def _lines(stream: TextIO, name: str) -> Iterator[tuple[str, object]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield from _parse(line, f"{name} line {number}")


def _parse(text: str, where: str) -> Iterator[tuple[str, object]]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProduceInputError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(payload, dict):
        found = type(payload).__name__
        raise ProduceInputError(f"{where}: expected a JSON object, found {found}")
    yield where, payload


def _payloads(source: str | None) -> Iterator[tuple[str, object]]:
    """(where, payload) pairs; ``where`` names the argument or file line for error messages."""
    if source is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a JSON object, @FILE.jsonl, or - to read stdin")
        source = "-"
    if source == "-":
        yield from _lines(click.get_text_stream("stdin"), "stdin")
    elif source.startswith("@"):
        path = Path(source[1:])
        try:
            with path.open(encoding="utf-8") as stream:
                yield from _lines(stream, str(path))
        except OSError as exc:
            raise ProduceInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        yield from _parse(source, "argument")


def renew(event: OutgoingEvent) -> OutgoingEvent:
    """A copy of an encoded event under a fresh id (and key, when the key was the id)."""
    event_id = new_event_id()
    key = event_id.encode() if event.key == event.event_id.encode() else event.key
    headers = [(k, event_id.encode() if k == h.EVENT_ID else v) for k, v in event.headers]
    return replace(event, event_id=event_id, key=key, headers=headers)


@click.command()
@click.argument("event")
@click.argument("source", required=False, metavar="[JSON | @FILE.jsonl | -]")
@click.option("--key", help="Kafka key (default: the event's key field, else the event id).")
@click.option("--delay", callback=_parse_delay, help="Deliver after this long, e.g. 30s, 5m.")
@click.option(
    "--at", "at", callback=_parse_at, help="Deliver at this ISO 8601 time (UTC if naive)."
)
@click.option(
    "--priority",
    type=click.Choice(["high", "normal", "low"]),
    help="Lane of this event's tasks (default: each subscriber's priority).",
)
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Send each payload N times.",
)
@click.pass_context
def produce(
    ctx: click.Context,
    event: str,
    source: str | None,
    key: str | None,
    delay: timedelta | None,
    at: datetime | None,
    priority: str | None,
    count: int,
) -> None:
    """Publish EVENT payloads: a JSON object, @FILE.jsonl (one object per line) or - (stdin).

    Prints each event id once Kafka acknowledged it. Payloads are sent in batches of 1000: on a
    bad line, the batches before it were already published (their ids are printed).
    """
    if delay is not None and at is not None:
        raise click.UsageError("give --delay or --at, not both")
    topology = load_topology(ctx.obj["topology_path"])
    started = time.monotonic()
    sent = 0
    extra = {h.PRIORITY: priority} if priority else None
    with Publisher(topology) as publisher:
        topic = publisher.encoder.codec(event).topic  # unknown event: fail before reading input
        batch: list[OutgoingEvent] = []
        for where, payload in _payloads(source):
            try:
                encoded = publisher.encoder.encode(
                    event, payload, key=key, delay=delay, deliver_at=at, headers=extra
                )
            except RecordError as exc:
                raise ProduceInputError(f"{where}: {exc}") from None
            batch.append(encoded)
            batch.extend(renew(encoded) for _ in range(count - 1))
            if len(batch) >= BATCH:
                sent += _send(publisher, batch)
                batch = []
        sent += _send(publisher, batch)
    elapsed = time.monotonic() - started
    rate = f", {sent / elapsed:,.0f}/s" if sent and elapsed > 0 else ""
    click.echo(f"published {sent} {event} events to {topic} in {elapsed:.2f} s{rate}", err=True)


def _send(publisher: Publisher, batch: list[OutgoingEvent]) -> int:
    ids = publisher.publish_encoded(batch)
    if ids:
        click.echo("\n".join(ids))
    return len(ids)
