"""`msm worker`: run the chosen layers of the pipeline in this process until stopped."""

from __future__ import annotations

import click

from pipeline.http import HttpSettings
from pipeline.topology import load_topology
from pipeline.worker.consumer import DEFAULT_FETCH_WAIT_MS, Fetch
from pipeline.worker.logs import FORMATS
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
    help="Port of this worker's HTTP server (ingress, /metrics, /healthz, /readyz); 0 picks a "
    "free one (logged). Each worker on a machine needs its own.",
)
@click.option("--no-http", is_flag=True, help="Do not serve HTTP.")
@click.option(
    "--fetch-wait-ms",
    default=DEFAULT_FETCH_WAIT_MS,
    show_default=True,
    envvar="MSM_FETCH_WAIT_MS",
    type=click.IntRange(0, 10_000),
    help="How long the broker may gather records for each hop's fetch: fewer wake-ups under "
    "load; 0 for the lowest latency at low rates.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    envvar="MSM_LOG_FORMAT",
    type=click.Choice(list(FORMATS), case_sensitive=False),
    help="text for people; json for one object per line (ts, level, logger, message, "
    "trace_id, event_id, subscriber).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    layers: str | None,
    http_host: str,
    http_port: int,
    no_http: bool,
    fetch_wait_ms: int,
    log_level: str,
    log_format: str,
) -> None:
    """Run pipeline layers as Faust agents; workers share each layer's partitions."""
    topology = load_topology(ctx.obj["topology_path"])
    chosen = [p.strip() for p in layers.split(",") if p.strip()] if layers else available_layers()
    http = None if no_http else HttpSettings(host=http_host, port=http_port)
    fetch = Fetch(wait_ms=fetch_wait_ms)
    run_worker(
        topology,
        chosen,
        http=http,
        fetch=fetch,
        loglevel=log_level.upper(),
        log_format=log_format.lower(),
    )
