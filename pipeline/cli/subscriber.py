"""`msm subscriber pause|resume|drop|show`: operator gating of one subscriber's deliveries.

Thin: each command validates its arguments and calls :mod:`pipeline.ops.control.store`, which
writes the subscriber's whole state to ``<ns>.control``; every delivery and execution worker
applies it within about a second (:mod:`pipeline.agents.delivery_control`).
"""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from pipeline.cli import params
from pipeline.ops.control import store
from pipeline.ops.control.record import DROP_REASON, ControlState, iso
from pipeline.topology import Topology, load_topology

JSON_VERSION = 1


def _topology(ctx: click.Context) -> Topology:
    return load_topology(ctx.obj["topology_path"])


@click.group()
def subscriber() -> None:
    """Operator gating: hold, resume or drop a subscriber's pending deliveries."""


@subscriber.command()
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Hold NAME's deliveries on every worker; its backlog waits in Kafka, nothing fails."""
    state = store.pause(_topology(ctx), name)
    click.echo(f"{name}: paused by {state.paused_by} (msm subscriber resume {name} to resume)")


@subscriber.command()
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Resume NAME's deliveries on every worker."""
    state = store.resume(_topology(ctx), name)
    click.echo(f"{name}: resumed by {state.by}")


@subscriber.command()
@click.argument("name")
@click.option(
    "--before",
    callback=params.since,
    metavar="TIME",
    help="Drop pending tasks of events published before TIME: ISO 8601 (UTC if naive) or a "
    "duration ago (2h: published more than 2 h ago).",
)
@click.option("--clear", is_flag=True, help="Stop dropping (forget the cut-off).")
@click.pass_context
def drop(ctx: click.Context, name: str, before: datetime | None, clear: bool) -> None:
    """Dead-letter NAME's pending tasks older than --before (never deleted: see `msm dlq`).

    Applies to tasks waiting for delivery or execution when the drop is issued, and to earlier
    failed tasks coming back for a retry; tasks queued later (delayed events coming due, dead
    letters redriven) are delivered. A paused subscriber drops when resumed.
    """
    if (before is None) == (not clear):
        raise click.UsageError("give exactly one of --before TIME or --clear")
    state = store.drop(_topology(ctx), name, before)
    if state.drop_before_ms is None:
        click.echo(f"{name}: no longer dropping tasks")
    else:
        cut = iso(state.drop_before_ms)
        click.echo(f"{name}: dead-lettering pending tasks published before {cut} ({DROP_REASON})")


@subscriber.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.pass_context
def show(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Show the operator state of NAME, or of every subscriber."""
    states = store.show(_topology(ctx), name)
    if as_json:
        document = {"version": JSON_VERSION, "subscribers": [s.to_dict() for s in states]}
        click.echo(json.dumps(document, indent=2))
        return
    Console().print(_table(states))


def _table(states: list[ControlState]) -> Table:
    table = Table("subscriber", "state", "since", "by", "dropping before", "drop by")
    for s in states:
        since = iso(s.paused_at_ms) if s.paused and s.paused_at_ms is not None else ""
        cut = iso(s.drop_before_ms) if s.drop_before_ms is not None else ""
        table.add_row(
            s.subscriber,
            "paused" if s.paused else "delivering",
            since,
            s.paused_by if s.paused else "",
            cut,
            s.drop_by if cut else "",
        )
    return table
