"""`msm lag`: how far each consumer group is behind, by MSM layer when a topology is at hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.ops import rates
from pipeline.ops.lag import collect_lag, open_admin
from pipeline.ops.lag_view import JSON_VERSION, rates_as_dict, render_report, report_as_dict
from pipeline.ops.layers import Classifier, classifier_for
from pipeline.ops.rates import RateSampler, Tick
from pipeline.topology import Topology, load_topology

DEFAULT_BOOTSTRAP = "localhost:9092"


@click.command()
@click.option(
    "--group", "groups", multiple=True, help="Only this consumer group (repeatable; default all)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one machine-readable JSON document (with --watch: one per line and refresh).",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Refresh until Ctrl-C, with records in/out per second and the time to drain.",
)
@click.option(
    "--interval-s",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="With --watch: stop after this many refreshes (default: until Ctrl-C).",
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
    count: int | None,
    bootstrap_servers: str | None,
    timeout_s: float,
) -> None:
    """Show consumer lag (log end offset minus committed offset) per group, topic and partition.

    Numbers match Kafka's own kafka-consumer-groups --describe: a partition a member holds but
    never committed shows no lag ("no commit"). Exits 1 when a --group does not exist.
    With --watch, "in/s" is how fast the topic grows, "out/s" how fast the group commits, and
    ETA the time to drain the lag at that pace ("growing" when it cannot).
    """
    if count is not None and not watch:
        raise click.UsageError("--count only applies to --watch")
    topology, note = _load(Path(ctx.obj["topology_path"]))
    classify = classifier_for(topology) if topology else None
    bootstrap = bootstrap_servers or (
        topology.kafka.bootstrap_servers if topology else DEFAULT_BOOTSTRAP
    )
    admin = open_admin(bootstrap, topology.kafka.client if topology else None)
    if watch:
        ticks = rates.watch(
            lambda: collect_lag(admin, groups, timeout_s), RateSampler(), interval_s, count
        )
        if as_json:
            _json_lines(ticks, classify, note)
        else:
            _live(ticks, classify, note, interval_s)
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


def _json_lines(ticks: Iterator[Tick], classify: Classifier | None, note: str | None) -> None:
    """One JSON object per refresh: the `msm lag --json` document plus ``rates``."""
    try:
        for tick in ticks:
            if tick.report is None or tick.rates is None:
                line: dict[str, object] = {"version": JSON_VERSION, "error": tick.error}
            else:
                line = dict(report_as_dict(tick.report, classify, note))
                line["rates"] = rates_as_dict(tick.report, tick.rates, classify)
            click.echo(json.dumps(line))
    except KeyboardInterrupt:
        pass


def _live(
    ticks: Iterator[Tick], classify: Classifier | None, note: str | None, every_s: float
) -> None:
    """Redraws until Ctrl-C; Kafka going away is shown and retried, not fatal."""
    with Live(Text("collecting lag..."), console=Console(), auto_refresh=False) as live:
        try:
            for tick in ticks:
                if tick.report is None:
                    live.update(Text(f"{tick.error}; retrying every {every_s:g}s", style="red"))
                else:
                    view = render_report(tick.report, classify, note=note, flows=tick.rates)
                    hint = Text(f"every {every_s:g}s, Ctrl-C to stop", style="dim")
                    live.update(Group(view, hint))
                live.refresh()
        except KeyboardInterrupt:
            pass
