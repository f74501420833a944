"""`msm lag`: how far each consumer group is behind, by MSM layer when a topology is at hand."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.ops.lag import LagReport, collect_lag, lag_rates, open_admin
from pipeline.ops.lag_view import render_report, report_as_dict
from pipeline.ops.layers import Classifier, classifier_for
from pipeline.topology import Topology, load_topology

DEFAULT_BOOTSTRAP = "localhost:9092"


@click.command()
@click.option(
    "--group", "groups", multiple=True, help="Only this consumer group (repeatable; default all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C, with the rate of change.")
@click.option(
    "--interval-s",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--bootstrap-servers",
    envvar="MSM_BOOTSTRAP_SERVERS",
    default=None,
    help="Kafka to ask (env MSM_BOOTSTRAP_SERVERS; default the topology's, else localhost:9092).",
)
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="How long to wait for Kafka's answers.",
)
@click.pass_context
def lag(
    ctx: click.Context,
    groups: tuple[str, ...],
    as_json: bool,
    watch: bool,
    interval_s: float,
    bootstrap_servers: str | None,
    timeout_s: float,
) -> None:
    """Show consumer lag (log end offset minus committed offset) per group, topic and partition.

    Numbers match Kafka's own kafka-consumer-groups --describe: a partition a member holds but
    never committed shows no lag ("no commit"). Exits 1 when a --group does not exist.
    """
    if as_json and watch:
        raise click.UsageError("--json and --watch do not combine; run --json repeatedly instead")
    topology, note = _load(Path(ctx.obj["topology_path"]))
    classify = classifier_for(topology) if topology else None
    bootstrap = bootstrap_servers or (
        topology.kafka.bootstrap_servers if topology else DEFAULT_BOOTSTRAP
    )
    admin = open_admin(bootstrap, topology.kafka.client if topology else None)
    if watch:
        _watch(lambda: collect_lag(admin, groups, timeout_s), classify, note, interval_s)
        return
    try:
        report = collect_lag(admin, groups, timeout_s)
    except KafkaUnavailableError as exc:
        raise KafkaUnavailableError(f"{exc} (bootstrap servers {bootstrap})") from exc
    if as_json:
        click.echo(json.dumps(report_as_dict(report, classify, note), indent=2))
    else:
        Console().print(render_report(report, classify, note=note))
    if any(g.error for g in report.groups):
        ctx.exit(1)


def _load(path: Path) -> tuple[Topology | None, str | None]:
    """The topology, or None and why not: lag is still worth showing without one."""
    if not path.exists():
        return None, f"no topology at {path}: rows are not grouped by layer"
    try:
        return load_topology(path), None
    except ConfigError as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
        return None, (
            f"topology did not load ({lines[0]}{more}; see `msm topology validate`): "
            "rows are not grouped by layer"
        )


def _watch(
    collect: Callable[[], LagReport], classify: Classifier | None, note: str | None, every_s: float
) -> None:
    """Redraws until Ctrl-C; Kafka going away is shown and retried, not fatal."""
    previous: LagReport | None = None
    console = Console()
    with Live(Text("collecting lag..."), console=console, auto_refresh=False) as live:
        try:
            while True:
                started = time.monotonic()
                try:
                    report = collect()
                except KafkaUnavailableError as exc:
                    live.update(Text(f"{exc}; retrying every {every_s:g}s", style="red"))
                else:
                    rates = lag_rates(previous, report) if previous else None
                    view = render_report(report, classify, rates, note)
                    hint = Text(f"every {every_s:g}s, Ctrl-C to stop", style="dim")
                    live.update(Group(view, hint))
                    previous = report
                live.refresh()
                time.sleep(max(0.0, every_s - (time.monotonic() - started)))
        except KeyboardInterrupt:
            pass
