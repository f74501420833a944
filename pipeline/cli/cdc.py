"""`msm cdc status|snapshot`: where each CDC source is, how fast it is read, and snapshots."""

from __future__ import annotations

import json

import click
from rich.console import Console

from pipeline.ops import cdc as ops
from pipeline.ops.cdc_view import cdc_document, cdc_table
from pipeline.topology import Topology, load_topology

JSON_VERSION = 1


def _topology(ctx: click.Context) -> Topology:
    return load_topology(ctx.obj["topology_path"])


@click.group()
def cdc() -> None:
    """Change data capture: sources' positions, pace and snapshots."""


@cdc.command()
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each source: table, position (LSN), pace, backlog and snapshot jobs."""
    topology = _topology(ctx)
    states = ops.read_sources(topology)
    if as_json:
        document = {
            "version": JSON_VERSION,
            "sources": [cdc_document(topology, n, s) for n, s in states.items()],
        }
        click.echo(json.dumps(document, indent=2))
        return
    if not states:
        click.echo("no cdc sources in the topology")
        return
    Console().print(cdc_table(topology, states))


@cdc.command()
@click.argument("source")
@click.option(
    "--subscriber",
    help="Publish the rows to this subscriber only (one that is new and needs them); "
    "default: every subscriber of the source's event.",
)
@click.pass_context
def snapshot(ctx: click.Context, source: str, subscriber: str | None) -> None:
    """Publish every existing row of SOURCE's table (op r) in key order, while it streams."""
    job = ops.request_snapshot(_topology(ctx), source, subscriber)
    who = subscriber or "every subscriber"
    click.echo(f"{source}: snapshot {job.id} requested for {who}; follow it with `msm cdc status`")
