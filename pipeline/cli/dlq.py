"""`msm dlq list|show|redrive`: read a subscriber's dead letters and send them back for a fresh run.

Dead letters are never deleted. Redrive remembers what it redrove (the consumer group
``<ns>.redrive.<s>``), so running it twice redrives only what died in between; ``--all``
redrives the whole window again. See :mod:`pipeline.ops.dlq_redrive`.
"""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.cli import params
from pipeline.ops.dlq import dlq_topic, find_dead_letters, list_dead_letters
from pipeline.ops.dlq_redrive import plan_redrive, redrive
from pipeline.ops.dlq_view import (
    JSON_VERSION,
    decode_payload,
    letter_detail,
    letter_summary,
    render_detail,
    render_list,
)
from pipeline.topology import Topology, load_topology


def _load(ctx: click.Context, subscriber: str) -> Topology:
    """The topology, failing early (exit 1, with a suggestion) on an unknown subscriber."""
    topology = load_topology(ctx.obj["topology_path"])
    dlq_topic(topology, subscriber)
    return topology


since_option = click.option(
    "--since",
    callback=params.since,
    metavar="TIME",
    help="Only dead letters from TIME on: ISO 8601 (UTC if naive) or a duration ago (1h, 2d).",
)
limit_option = click.option(
    "--limit", type=click.IntRange(min=1), help="At most N dead letters, the oldest first."
)


@click.group()
def dlq() -> None:
    """Dead letters: tasks that failed for good (non-retriable or out of attempts)."""


@dlq.command("list")
@click.argument("subscriber")
@since_option
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.pass_context
def list_command(
    ctx: click.Context,
    subscriber: str,
    since: datetime | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List SUBSCRIBER's dead letters, oldest first; redriven ones are marked."""
    topology = _load(ctx, subscriber)
    letters = list_dead_letters(topology, subscriber, since=since, limit=limit)
    topic = dlq_topic(topology, subscriber)
    if as_json:
        document = {
            "version": JSON_VERSION,
            "subscriber": subscriber,
            "topic": topic,
            "count": len(letters),
            "dead_letters": [letter_summary(d) for d in letters],
        }
        click.echo(json.dumps(document, indent=2))
    elif not letters:
        click.echo(f"no dead letters in {topic}" + (" in that window" if since else ""))
    else:
        title = f"{topic}: {len(letters)} dead letter{'s' if len(letters) != 1 else ''}"
        Console().print(render_list(letters, title))


@dlq.command()
@click.argument("subscriber")
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.pass_context
def show(ctx: click.Context, subscriber: str, ident: str, as_json: bool) -> None:
    """Show one dead letter by event id (or task id) or PARTITION:OFFSET.

    Every header, the whole error chain and the payload (decoded with the event's schemas
    when they read it, else as bytes). An event dead-lettered several times shows the latest.
    """
    topology = _load(ctx, subscriber)
    found = find_dead_letters(topology, subscriber, ident)
    letter = found[-1]
    decoded = decode_payload(letter, topology)
    others = [d.ref for d in found[:-1]]
    if as_json:
        document = {**letter_detail(letter, decoded), "earlier": others}
        click.echo(json.dumps(document, indent=2))
        return
    console = Console()
    console.print(render_detail(letter, decoded))
    if others:
        console.print(f"dead-lettered {len(found)} times; earlier: {', '.join(others)}")


@dlq.command("redrive")
@click.argument("subscriber")
@since_option
@limit_option
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also dead letters redriven before (default: only those never redriven).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def redrive_command(
    ctx: click.Context,
    subscriber: str,
    since: datetime | None,
    limit: int | None,
    everything: bool,
    yes: bool,
) -> None:
    """Send SUBSCRIBER's dead letters back to its queue for a fresh run (attempt 1).

    The dead letters stay where they are; each copy carries msm.redriven_from. A second
    redrive takes only dead letters that were never redriven, unless --all.
    """
    topology = _load(ctx, subscriber)
    plan = plan_redrive(topology, subscriber, since=since, limit=limit, everything=everything)
    if not plan.total:
        click.echo(f"nothing to redrive in {plan.topic}" + ("" if everything else " (try --all)"))
        return
    if not yes:
        click.confirm(f"Redrive {plan.total} dead letters to {plan.target}?", abort=True)
    columns = (
        TextColumn("redriving"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("redrive", total=plan.total)
        result = redrive(
            topology,
            plan,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    click.echo(f"redrove {result.redriven} dead letters from {plan.topic} to {result.target}")
