"""`msm status`: broker, topology, workers per layer, throughput, lag, DLQ and canaries at once."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from pipeline.ops.cdc import read_sources
from pipeline.ops.cdc_view import cdc_document, cdc_table
from pipeline.ops.lag import open_admin
from pipeline.ops.status import SAMPLE_S, collect_status
from pipeline.ops.status_view import render_status, status_as_dict
from pipeline.topology import load_topology


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.option(
    "--sample-s",
    type=click.FloatRange(min=0),
    default=SAMPLE_S,
    show_default=True,
    help="Seconds between the two lag samples that give records/s (0: no rates).",
)
@click.option(
    "--metrics-url",
    "metrics_urls",
    multiple=True,
    help="A worker's /metrics URL to read live canary state from (repeatable).",
)
@click.option(
    "--bootstrap-servers",
    envvar="MSM_BOOTSTRAP_SERVERS",
    default=None,
    help="Kafka to ask (env MSM_BOOTSTRAP_SERVERS; default the topology's).",
)
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="How long to wait for Kafka's answers.",
)
@click.pass_context
def status(
    ctx: click.Context,
    as_json: bool,
    sample_s: float,
    metrics_urls: tuple[str, ...],
    bootstrap_servers: str | None,
    timeout_s: float,
) -> None:
    """Show broker health, the topology, each layer's workers, records/s and lag, dead-letter
    counts, canaries and CDC sources' pace. Exits 1 when the broker is unreachable (--json
    still prints what is known, with "reachable": false)."""
    topology = load_topology(Path(ctx.obj["topology_path"]))
    bootstrap = bootstrap_servers or topology.kafka.bootstrap_servers
    admin = open_admin(bootstrap, topology.kafka.client)
    result = collect_status(
        topology,
        admin,
        bootstrap,
        sample_s=sample_s,
        timeout_s=timeout_s,
        metrics_urls=metrics_urls,
    )
    sources = read_sources(topology) if topology.cdc and result.broker.reachable else None
    if as_json:
        document = status_as_dict(result)
        if sources is not None:
            document["cdc"] = [cdc_document(topology, n, st) for n, st in sources.items()]
        click.echo(json.dumps(document, indent=2))
    else:
        Console().print(render_status(result))
        if sources:
            Console().print(cdc_table(topology, sources))
    if not result.broker.reachable:
        click.echo(f"error: Kafka at {bootstrap} is unreachable: {result.broker.error}", err=True)
        ctx.exit(1)
