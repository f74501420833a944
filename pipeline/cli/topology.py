"""`msm topology validate|show|apply`: check topology.yaml, see its topics, create them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pipeline.topology import Topology, TopologyError, format_duration, load_topology
from pipeline.topology.apply import ApplyReport, apply_topology
from pipeline.topology.topics import TopicPlan, plan_topics


def _path(ctx: click.Context, file: str | None = None) -> Path:
    return Path(file or (ctx.obj or {}).get("topology_path") or "topology.yaml")


@click.group()
def topology() -> None:
    """Validate, show and apply the topology file (--topology, default topology.yaml)."""


@topology.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def validate(ctx: click.Context, file: str | None) -> None:
    """Check FILE (default: the --topology file) and print every problem in it."""
    path = _path(ctx, file)
    try:
        loaded = load_topology(path)
    except TopologyError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} in {path}", err=True)
        ctx.exit(1)
    click.echo(
        f"ok: {len(loaded.events)} events, {len(loaded.subscribers)} subscribers, "
        f"{len(loaded.schedules)} schedules"
    )


@topology.command()
@click.option("--json", "as_json", is_flag=True, help="Print the topic plan as JSON.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Every topic of every layer and subscriber, with partitions and configs."""
    loaded = load_topology(_path(ctx))
    plans = plan_topics(loaded)
    if as_json:
        click.echo(json.dumps(_as_json(loaded, plans), indent=2))
        return
    console = Console()
    console.width = max(console.width, 120)  # tables are unreadable at a pipe's default 80
    console.print(_topics_table(loaded, plans))
    if loaded.subscribers:
        console.print(_subscribers_table(loaded))


@topology.command()
@click.option("--grow-partitions", is_flag=True, help="Raise partition counts that are too low.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.pass_context
def apply(ctx: click.Context, grow_partitions: bool, dry_run: bool) -> None:
    """Create missing topics and fix their configs; never deletes topics or lowers partitions."""
    loaded = load_topology(_path(ctx))
    report = apply_topology(loaded, grow_partitions=grow_partitions, dry_run=dry_run)
    for line in report_lines(report):
        click.echo(line)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


def report_lines(report: ApplyReport) -> list[str]:
    """The report as lines: one per change, then a summary."""
    would = "would " if report.dry_run else ""
    lines = [f"{would}create {name}" if would else f"created {name}" for name in report.created]
    lines += [f"{would}set {c.topic} {c.key}: {c.old} -> {c.new}" for c in report.altered]
    lines += [
        f"{would}grow {g.topic}: {g.old} -> {g.new} partitions"
        if would
        else f"grew {g.topic}: {g.old} -> {g.new} partitions"
        for g in report.grown
    ]
    lines += [
        f"would grow {g.topic}: {g.old} -> {g.new} partitions (needs --grow-partitions)"
        for g in report.would_grow
    ]
    lines.append(
        f"{'dry run: ' if report.dry_run else ''}{len(report.created)} created, "
        f"{len(report.altered)} config changes, {len(report.grown)} grown, "
        f"{len(report.unchanged)} unchanged"
    )
    return lines


_SHOWN = ("retention.ms", "max.message.bytes", "cleanup.policy", "min.insync.replicas")


def _topics_table(loaded: Topology, plans: list[TopicPlan]) -> Table:
    kafka = loaded.kafka
    table = Table(
        title=f"{loaded.source_path.name}: namespace {loaded.namespace}, replication factor "
        f"{kafka.replication_factor}, min.insync.replicas {kafka.min_insync_replicas}"
    )
    table.add_column("layer")
    table.add_column("topic", no_wrap=True)
    table.add_column("owner")
    table.add_column("partitions", justify="right")
    table.add_column("retention", justify="right")
    table.add_column("max.message.bytes", justify="right")
    table.add_column("cleanup")
    others = any(k not in _SHOWN for p in plans for k in p.config)
    if others:
        table.add_column("other config")
    for p in plans:
        retention = p.config.get("retention.ms")
        row = [
            p.layer,
            p.name,
            p.owner,
            str(p.partitions),
            format_duration(timedelta(milliseconds=int(retention))) if retention else "-",
            p.config.get("max.message.bytes", "-"),
            p.config.get("cleanup.policy", "-"),
        ]
        if others:
            row.append(" ".join(f"{k}={v}" for k, v in p.config.items() if k not in _SHOWN))
        table.add_row(*row)
    return table


def _subscribers_table(loaded: Topology) -> Table:
    table = Table(title="subscribers")
    for column in ("subscriber", "events", "target", "concurrency", "rate", "retry", "priority"):
        table.add_column(column, overflow="fold")
    for name in sorted(loaded.subscribers):
        s = loaded.subscribers[name]
        r = s.retry
        retry = (
            f"{r.max_attempts}x {r.backoff} {format_duration(r.initial)}..{format_duration(r.max)}"
        )
        table.add_row(
            name,
            "\n".join(s.events),
            s.handler or str(s.endpoint),
            f"{s.concurrency.min}-{s.concurrency.max}",
            str(s.rate_limit) if s.rate_limit else "-",
            retry,
            s.priority,
        )
    return table


def _as_json(loaded: Topology, plans: list[TopicPlan]) -> dict[str, object]:
    return {
        "namespace": loaded.namespace,
        "source": str(loaded.source_path),
        "topics": [
            {
                "name": p.name,
                "layer": p.layer,
                "owner": p.owner,
                "partitions": p.partitions,
                "replication_factor": p.replication_factor,
                "config": dict(p.config),
            }
            for p in plans
        ],
    }
