"""Renderings of dead letters for ``msm dlq``: stable JSON documents and rich tables.

Payloads are shown decoded when the event's schemas (current and previous, from the topology)
read them, else as bytes: a dead letter is often dead *because* its payload is odd, so showing
it must never fail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from pipeline.agents.delivery_json import to_json_value
from pipeline.agents.delivery_policy import ErrorEntry
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.errors import MSMError
from pipeline.ops.dlq import DeadLetter
from pipeline.topology import Topology

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
JSON_VERSION = 1
HEX_PREVIEW = 512


@dataclass(frozen=True)
class DecodedPayload:
    value: JsonValue  # the decoded record as JSON values; None when not decoded
    problem: str | None  # why it was not decoded


def decode_payload(letter: DeadLetter, topology: Topology) -> DecodedPayload:
    """The payload decoded with the event's schemas, or why not."""
    spec = topology.events.get(letter.event_type)
    if spec is None:
        return DecodedPayload(None, f"event type {letter.event_type!r} is not in the topology")
    try:
        schemas = EventSchemas.load(spec.schema_path, spec.previous_schemas)
        record = wire.decode(letter.payload, schemas)
    except MSMError as exc:
        return DecodedPayload(None, str(exc))
    # The JSON an HTTP endpoint would get for it (ISO instants, base64 bytes, ...).
    value: JsonValue = json.loads(json.dumps(to_json_value(record)))
    return DecodedPayload(value, None)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def _text(value: bytes | None) -> tuple[str | None, str | None]:
    """(text, None) for UTF-8 bytes, (None, base64) for other bytes, (None, None) for None."""
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(value).decode()


def _error_dict(entry: ErrorEntry | None) -> JsonValue:
    if entry is None:
        return None
    result: dict[str, JsonValue] = json.loads(entry.model_dump_json(by_alias=True))
    return result


def letter_summary(letter: DeadLetter) -> dict[str, JsonValue]:
    """One row of ``msm dlq list --json``; every key is always present."""
    key, key_b64 = _text(letter.key)
    return {
        "ref": letter.ref,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "event_id": letter.event_id,
        "type": letter.event_type,
        "key": key,
        "key_base64": key_b64,
        "attempts": letter.attempts,
        "reason": letter.reason or None,
        "dead_at": letter.dead_at.isoformat(),
        "redriven": letter.redriven,
        "errors_total": letter.errors.total if letter.errors else 0,
        "first_error": _error_dict(letter.first_error),
        "last_error": _error_dict(letter.last_error),
        "payload_bytes": len(letter.payload),
    }


def letter_detail(letter: DeadLetter, decoded: DecodedPayload) -> dict[str, JsonValue]:
    """``msm dlq show --json``: the summary plus every header, the error chain and the payload."""
    headers: list[JsonValue] = []
    for name, raw in letter.headers:
        text, b64 = _text(raw)
        headers.append({"name": name, "value": text, "base64": b64})
    errors: JsonValue = None
    if letter.errors is not None:
        errors = json.loads(letter.errors.to_json())
    payload: dict[str, JsonValue] = {"bytes": len(letter.payload)}
    if decoded.problem is None:
        payload |= {"format": "avro", "value": decoded.value}
    else:
        b64 = base64.b64encode(letter.payload).decode()
        payload |= {"format": "bytes", "problem": decoded.problem, "base64": b64}
    return {
        **letter_summary(letter),
        "version": JSON_VERSION,
        "timestamp": _iso(letter.timestamp_ms),
        "headers": headers,
        "errors": errors,
        "errors_problem": letter.errors_problem,
        "payload": payload,
    }


def error_line(entry: ErrorEntry | None) -> str:
    if entry is None:
        return ""
    what = f"HTTP {entry.status}" if entry.status is not None else entry.error_type
    return f"{what}: {entry.message}" if entry.message else what


def render_list(letters: Sequence[DeadLetter], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    # Narrow terminals wrap ids and errors rather than cut them: they are copied into `show`.
    table.add_column("partition:offset", no_wrap=True)
    table.add_column("event id", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("key", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("reason", overflow="fold")
    table.add_column("dead at (UTC)", overflow="fold")
    table.add_column("last error", overflow="fold", max_width=60)
    for d in letters:
        reason = d.reason or "?"
        table.add_row(
            d.ref,
            d.event_id,
            d.event_type,
            _text(d.key)[0] or ("" if d.key is None else "<binary>"),
            str(d.attempts),
            f"{reason} (redriven)" if d.redriven else reason,
            d.dead_at.strftime("%Y-%m-%d %H:%M:%S"),
            error_line(d.last_error) or (d.errors_problem or ""),
            style="dim" if d.redriven else None,
        )
    return table


def render_detail(letter: DeadLetter, decoded: DecodedPayload) -> RenderableType:
    about = Table.grid(padding=(0, 2))
    about.add_column(style="bold")
    about.add_column()
    key = _text(letter.key)
    for name, value in (
        ("dead letter", f"{letter.source}"),
        ("event", f"{letter.event_type} {letter.event_id}"),
        ("key", key[0] if key[0] is not None else (f"base64:{key[1]}" if key[1] else "(none)")),
        ("attempts", str(letter.attempts)),
        ("reason", letter.reason or "?"),
        ("dead at", letter.dead_at.isoformat()),
        ("redriven", "yes" if letter.redriven else "no"),
    ):
        about.add_row(name, value)
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name", no_wrap=True)
    headers.add_column("value", overflow="fold")
    for name, raw in letter.headers:
        text, b64 = _text(raw)
        headers.add_row(name, text if text is not None else f"base64:{b64}")
    parts: list[RenderableType] = [about, headers, _errors(letter), Text("payload", style="bold")]
    if decoded.problem is None:
        parts.append(JSON(json.dumps(decoded.value)))
    else:
        parts.append(Text(f"not decoded ({decoded.problem}); {len(letter.payload)} bytes:"))
        parts.append(Text(_hexdump(letter.payload[:HEX_PREVIEW])))
        if len(letter.payload) > HEX_PREVIEW:
            parts.append(Text("... (--json has the whole payload in base64)", style="dim"))
    return Group(*parts)


def _errors(letter: DeadLetter) -> RenderableType:
    if letter.errors is None:
        return Text(f"errors: {letter.errors_problem or 'none recorded'}")
    chain = letter.errors
    kept = len(chain.errors)
    title = f"errors ({chain.total})" + (f", last {kept} kept" if chain.total > kept else "")
    table = Table(title=title, title_justify="left")
    for name in ("attempt", "at", "type", "status", "message"):
        table.add_column(name, overflow="fold" if name == "message" else "ellipsis")
    for e in chain.errors:
        status = "" if e.status is None else str(e.status)
        at = e.at.isoformat(timespec="milliseconds")
        table.add_row(str(e.attempt), at, e.error_type, status, e.message)
    return table


def _hexdump(data: bytes) -> str:
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{start:08x}  {chunk.hex(' '):<47}  {text}")
    return "\n".join(lines)
