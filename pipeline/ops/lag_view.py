"""Renderings of a :class:`~pipeline.ops.lag.LagReport`: stable JSON and rich tables.

With a classifier (from a topology) rows are grouped by MSM layer in pipeline order, so the
first section with lag is the layer that is behind; without one they are listed by group.
With :class:`~pipeline.ops.rates.FlowRates` (``msm lag --watch``) the tables gain records in and
out per second and the time to drain, and the JSON document a ``rates`` section.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.ops.lag import GroupLag, LagRates, LagReport, PartitionLag, TopicLag
from pipeline.ops.layers import LAYERS, Classifier, TopicRole
from pipeline.ops.rates import Flow, FlowRates, format_eta, format_rate

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
JSON_VERSION = 1


def report_as_dict(
    report: LagReport, classify: Classifier | None = None, note: str | None = None
) -> dict[str, JsonValue]:
    """The ``msm lag --json`` document: groups -> topics -> partitions, with totals.

    Keys are always present (null when unknown), so consumers need no existence checks.
    """
    return {
        "version": JSON_VERSION,
        "collected_at": _iso(report.collected_at),
        "grouped_by_layer": classify is not None,
        "note": note,
        "total_lag": report.lag,
        "groups": [_group_dict(g, classify) for g in report.groups],
    }


def rates_as_dict(
    report: LagReport, rates: FlowRates, classify: Classifier | None = None
) -> dict[str, JsonValue]:
    """The ``rates`` section of each ``msm lag --watch --json`` line.

    Rates are records per second (null until a second sample), ``eta_s`` is set only while
    ``trend`` is ``draining``; trends: unknown, caught_up, draining, growing, steady, stalled.
    """
    topics: list[JsonValue] = []
    for g in report.groups:
        for t in g.topics:
            role = classify(t.topic) if classify else None
            f = rates.by_topic.get((g.group, t.topic))
            row: dict[str, JsonValue] = {"group": g.group, "topic": t.topic}
            row |= {"layer": role.layer if role else None, "owner": role.owner if role else None}
            topics.append(row | flow_dict(f, t.lag))
    groups: list[JsonValue] = []
    for g in report.groups:
        entry: dict[str, JsonValue] = {"group": g.group}
        groups.append(entry | flow_dict(rates.by_group.get(g.group), g.lag))
    return {"seconds": rates.seconds, "topics": topics, "groups": groups}


def flow_dict(f: Flow | None, lag: int) -> dict[str, JsonValue]:
    """``lag``, ``rate_in``, ``rate_out``, ``trend``, ``eta_s`` of one row (all keys always)."""
    if f is None:
        return {"lag": lag, "rate_in": None, "rate_out": None, "trend": "unknown", "eta_s": None}
    return {
        "lag": f.lag,
        "rate_in": _round(f.rate_in),
        "rate_out": _round(f.rate_out),
        "trend": f.trend,
        "eta_s": _round(f.eta_s),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _group_dict(group: GroupLag, classify: Classifier | None) -> dict[str, JsonValue]:
    return {
        "group": group.group,
        "state": group.state,
        "members": group.members,
        "error": group.error,
        "total_lag": group.lag,
        "uncommitted_partitions": group.uncommitted,
        "topics": [_topic_dict(t, classify) for t in group.topics],
    }


def _topic_dict(topic: TopicLag, classify: Classifier | None) -> dict[str, JsonValue]:
    role = classify(topic.topic) if classify else None
    return {
        "topic": topic.topic,
        "layer": role.layer if role else None,
        "owner": role.owner if role else None,
        "total_lag": topic.lag,
        "uncommitted_partitions": topic.uncommitted,
        "partitions": [_partition_dict(p) for p in topic.partitions],
    }


def _partition_dict(p: PartitionLag) -> dict[str, JsonValue]:
    return {
        "partition": p.partition,
        "committed": p.committed,
        "end": p.end,
        "lag": p.lag,
        "member_id": p.member.member_id if p.member else None,
        "client_id": p.member.client_id if p.member else None,
        "host": p.member.host if p.member else None,
    }


def render_report(
    report: LagReport,
    classify: Classifier | None = None,
    rates: LagRates | None = None,
    note: str | None = None,
    flows: FlowRates | None = None,
) -> RenderableType:
    """A topic table (by layer when ``classify`` is given) above a per-group summary."""
    if not report.groups:
        parts: list[RenderableType] = [Text("no consumer groups found", style="dim")]
    elif any(g.topics for g in report.groups):
        parts = [topic_table(report, classify, rates, flows), group_table(report, rates, flows)]
    else:
        parts = [group_table(report, rates, flows)]
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def topic_table(
    report: LagReport,
    classify: Classifier | None = None,
    rates: LagRates | None = None,
    flows: FlowRates | None = None,
) -> Table:
    """One row per (group, topic); sections per layer when a classifier is given."""
    table = Table(title=f"Consumer lag at {_clock(report.collected_at)}", title_justify="left")
    if classify:
        table.add_column("layer", style="bold")
        table.add_column("owner")
    for name in ("group", "topic"):
        table.add_column(name, overflow="fold")  # names are copied into commands: never elide
    for name in ("partitions", "lag", "no commit"):
        table.add_column(name, justify="right")
    if rates:
        table.add_column("lag/s", justify="right")
    if flows:
        _flow_columns(table)
    rows = [(g, t) for g in report.groups for t in g.topics]
    if not classify:
        for group, topic in rows:
            table.add_row(group.group, topic.topic, *_numbers(group, topic, rates, flows))
        return table
    sections = group_by_layer(rows, classify)
    for index, layer in enumerate(s for s in LAYERS if s in sections):
        if index:
            table.add_section()
        for i, (role, group, topic) in enumerate(sections[layer]):
            table.add_row(
                layer if i == 0 else "",
                role.owner or "-",
                group.group,
                topic.topic,
                *_numbers(group, topic, rates, flows),
            )
    return table


def group_by_layer(
    rows: Sequence[tuple[GroupLag, TopicLag]], classify: Classifier
) -> dict[str, list[tuple[TopicRole, GroupLag, TopicLag]]]:
    """Rows by layer, each layer's rows ordered by owner, group and topic."""
    sections: dict[str, list[tuple[TopicRole, GroupLag, TopicLag]]] = {}
    for group, topic in rows:
        role = classify(topic.topic)
        sections.setdefault(role.layer, []).append((role, group, topic))
    for entries in sections.values():
        entries.sort(key=lambda e: (e[0].owner or "", e[1].group, e[2].topic))
    return sections


def group_table(
    report: LagReport, rates: LagRates | None = None, flows: FlowRates | None = None
) -> Table:
    """One row per group with its totals, plus a grand total."""
    table = Table(show_footer=True)
    table.add_column("group", footer="total", overflow="fold")
    table.add_column("state")
    table.add_column("members", justify="right")
    table.add_column("topics", justify="right")
    table.add_column("lag", justify="right", footer=f"{report.lag:,}")
    table.add_column("no commit", justify="right")
    if rates:
        table.add_column("lag/s", justify="right", footer=_rate(sum(rates.by_group.values())))
    if flows:
        _flow_columns(table)
    notes = [_note(g) for g in report.groups]
    if any(notes):
        table.add_column("note")
    for g, note in zip(report.groups, notes, strict=True):
        cells: list[str | Text] = [g.group, g.state, str(g.members), str(len(g.topics))]
        cells.append(f"{g.lag:,}")
        cells.append(str(g.uncommitted) if g.uncommitted else "")
        if rates:
            cells.append(_rate(rates.by_group.get(g.group)))
        if flows:
            cells.extend(flow_cells(flows.by_group.get(g.group)))
        if any(notes):
            cells.append(Text(note, style="red" if g.error else "dim"))
        table.add_row(*cells)
    return table


def _note(group: GroupLag) -> str:
    return group.error or ("" if group.topics else "no committed offsets")


def _numbers(
    group: GroupLag, topic: TopicLag, rates: LagRates | None, flows: FlowRates | None = None
) -> list[str | Text]:
    cells: list[str | Text] = [str(len(topic.partitions)), f"{topic.lag:,}"]
    cells.append(str(topic.uncommitted) if topic.uncommitted else "")
    if rates:
        cells.append(_rate(rates.by_topic.get((group.group, topic.topic))))
    if flows:
        cells.extend(flow_cells(flows.by_topic.get((group.group, topic.topic))))
    return cells


def _flow_columns(table: Table) -> None:
    for name in ("in/s", "out/s", "ETA"):
        table.add_column(name, justify="right")


_TREND_STYLE = {"growing": "red", "stalled": "red", "draining": "green"}


def flow_cells(f: Flow | None) -> list[str | Text]:
    """in/s, out/s and ETA cells of one row ("growing"/"stalled" in red)."""
    if f is None:
        return ["", "", ""]
    eta = Text(format_eta(f), style=_TREND_STYLE.get(f.trend, "dim"))
    return [format_rate(f.rate_in), format_rate(f.rate_out), eta]


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:+,.1f}"


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")


def _clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s).strftime("%H:%M:%S")
