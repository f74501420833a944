"""`msm worker`: run the chosen layers of the pipeline in this process until stopped."""

from __future__ import annotations

import click

from pipeline.http import HttpSettings
from pipeline.topology import load_topology
from pipeline.worker.runner import available_layers, run_worker


@click.command()
@click.option(
    "--layers",
    default=None,
    help="Comma-separated layers to run (default: all that exist), e.g. frontend,scheduler.",
)
@click.option("--http-host", default="127.0.0.1", show_default=True, help="HTTP ingress address.")
@click.option(
    "--http-port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="HTTP ingress and health port (with the frontend layer).",
)
@click.option("--no-http", is_flag=True, help="Do not serve HTTP.")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def worker(
    ctx: click.Context,
    layers: str | None,
    http_host: str,
    http_port: int,
    no_http: bool,
    log_level: str,
) -> None:
    """Run pipeline layers as Faust agents; workers share each layer's partitions."""
    topology = load_topology(ctx.obj["topology_path"])
    chosen = [p.strip() for p in layers.split(",") if p.strip()] if layers else available_layers()
    http = None if no_http else HttpSettings(host=http_host, port=http_port)
    run_worker(topology, chosen, http=http, loglevel=log_level.upper())
