"""Renderings of a :class:`~pipeline.ops.status.Status`: the stable ``--json`` document and one
rich screen (broker, topology, layers with their workers, lag by subscriber, DLQ, canaries).

JSON keys are always present; what could not be known is null (``layers`` and ``dlq`` when the
broker is unreachable), so a script can tell "zero" from "unknown".
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.ops.lag_view import JsonValue, flow_cells, flow_dict
from pipeline.ops.status import (
    BrokerHealth,
    CanaryStatus,
    DlqCount,
    LayerStatus,
    Status,
    TopologySummary,
    Worker,
)

JSON_VERSION = 1


def status_as_dict(status: Status) -> dict[str, JsonValue]:
    """The ``msm status --json`` document."""
    return {
        "version": JSON_VERSION,
        "collected_at": _iso(status.collected_at),
        "broker": _broker_dict(status.broker),
        "topology": _topology_dict(status.topology),
        "sample_s": None if status.sample_s is None else round(status.sample_s, 3),
        "layers": None if status.layers is None else [_layer_dict(x) for x in status.layers],
        "dlq": None if status.dlq is None else [_dlq_dict(d) for d in status.dlq],
        "canaries": [_canary_dict(c) for c in status.canaries],
    }


def _broker_dict(b: BrokerHealth) -> dict[str, JsonValue]:
    return {
        "bootstrap": b.bootstrap,
        "reachable": b.reachable,
        "error": b.error,
        "cluster_id": b.cluster_id,
        "controller_id": b.controller_id,
        "brokers": [{"id": n.id, "host": n.host, "port": n.port} for n in b.brokers],
    }


def _topology_dict(t: TopologySummary) -> dict[str, JsonValue]:
    return {
        "path": t.path,
        "namespace": t.namespace,
        "events": [{"name": n, "partitions": p} for n, p in t.events.items()],
        "subscribers": [
            {"name": s.name, "kind": s.kind, "handler": s.handler, "events": list(s.events)}
            for s in t.subscribers
        ],
        "schedules": list(t.schedules),
        "delay_tiers": list(t.delay_tiers),
        "planned_topics": t.planned_topics,
        "missing_topics": None if t.missing_topics is None else list(t.missing_topics),
    }


def _worker_dict(w: Worker) -> dict[str, JsonValue]:
    return {
        "member_id": w.member_id,
        "client_id": w.client_id,
        "host": w.host,
        "partitions": [{"topic": t, "partition": p} for t, p in w.partitions],
    }


def _layer_dict(x: LayerStatus) -> dict[str, JsonValue]:
    head: dict[str, JsonValue] = {
        "layer": x.layer,
        "group": x.group,
        "state": x.state,
        "error": x.error,
        "workers": [_worker_dict(w) for w in x.workers],
        "uncommitted_partitions": x.uncommitted,
    }
    topics: list[JsonValue] = []
    for t in x.topics:
        row: dict[str, JsonValue] = {"topic": t.topic, "owner": t.owner}
        topics.append(row | flow_dict(t.flow, t.flow.lag))
    return head | flow_dict(x.flow, x.flow.lag) | {"topics": topics}


def _dlq_dict(d: DlqCount) -> dict[str, JsonValue]:
    return {"subscriber": d.subscriber, "topic": d.topic, "count": d.count, "error": d.error}


def _canary_dict(c: CanaryStatus) -> dict[str, JsonValue]:
    return {
        "subscriber": c.subscriber,
        "handler": c.handler,
        "percent": c.percent,
        "error_rate_threshold": c.error_rate_threshold,
        "state": c.state,
        "readings": [
            {"url": r.url, "percent": r.percent, "rollbacks": r.rollbacks, "error": r.error}
            for r in c.readings
        ],
    }


def render_status(status: Status) -> RenderableType:
    """The whole screen, top to bottom in the order an operator asks: is Kafka up, what is
    deployed, who is working, who is behind, what died, which canary is live."""
    parts: list[RenderableType] = [_broker_text(status.broker), _topology_text(status.topology)]
    if status.layers is not None:
        workers: RenderableType = worker_table(status)
        if not any(x.workers for x in status.layers):
            workers = Text("no workers: no layer's consumer group has a member", style="red")
        parts += [layer_table(status), workers, subscriber_table(status)]
    if status.dlq is not None:
        parts.append(dlq_table(status.dlq))
    parts.append(canary_table(status.canaries))
    return Group(*parts)


def _broker_text(b: BrokerHealth) -> Text:
    if not b.reachable:
        return Text(f"broker {b.bootstrap}: UNREACHABLE ({b.error})", style="bold red")
    text = Text(f"broker {b.bootstrap}: ", style="bold")
    text.append("reachable", style="green")
    text.append(
        f", cluster {b.cluster_id or '?'}, {_n(len(b.brokers), 'broker')}, "
        f"controller {b.controller_id if b.controller_id is not None else '?'}"
    )
    return text


def _topology_text(t: TopologySummary) -> Text:
    handlers = sum(s.kind == "handler" for s in t.subscribers)
    text = Text(f"topology {t.path}: namespace {t.namespace}, ", style="bold")
    text.append(
        f"{_n(len(t.events), 'event')}, {_n(len(t.subscribers), 'subscriber')} "
        f"({handlers} handler, {len(t.subscribers) - handlers} endpoint), "
        f"{_n(len(t.schedules), 'schedule')}, delay tiers {' '.join(t.delay_tiers)}; "
        f"{_n(t.planned_topics, 'topic')} planned"
    )
    if t.missing_topics:
        shown = ", ".join(t.missing_topics[:3]) + (", ..." if len(t.missing_topics) > 3 else "")
        text.append(
            f", {len(t.missing_topics)} missing ({shown}; run `msm topology apply`)", style="red"
        )
    elif t.missing_topics is not None:
        text.append(", all present", style="green")
    return text


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def layer_table(status: Status) -> Table:
    over = f" over {status.sample_s:.1f}s" if status.sample_s else ""
    table = Table(title=f"Layers (records/s{over})", title_justify="left")
    for name in ("layer", "group", "state"):
        table.add_column(name)
    for name in ("workers", "partitions", "lag"):
        table.add_column(name, justify="right")
    for name in ("in/s", "out/s", "ETA"):
        table.add_column(name, justify="right")
    table.add_column("note")
    for x in status.layers or ():
        held = sum(len(w.partitions) for w in x.workers)
        style = "red" if not x.workers else ""
        note = "no worker runs this layer" if not x.workers else ""
        if x.error:
            note = f"{note} ({x.error})" if note else x.error
        table.add_row(
            x.layer,
            x.group,
            x.state,
            Text(str(len(x.workers)), style=style),
            str(held),
            f"{x.flow.lag:,}",
            *flow_cells(x.flow),
            Text(note, style="dim"),
        )
    return table


def worker_table(status: Status) -> Table:
    table = Table(title="Workers (consumer group members)", title_justify="left")
    for name in ("layer", "client id", "host", "member"):
        table.add_column(name, overflow="fold")
    table.add_column("partitions", overflow="fold")
    for x in status.layers or ():
        for w in x.workers:
            table.add_row(x.layer, w.client_id, w.host, w.member_id, _partitions(w))
    return table


def _partitions(w: Worker) -> str:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in w.partitions:
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{t}[{','.join(map(str, ps))}]" for t, ps in by_topic.items()) or "-"


def subscriber_table(status: Status) -> Table:
    table = Table(title="Lag by layer and subscriber", title_justify="left")
    for name in ("layer", "owner", "topic"):
        table.add_column(name, overflow="fold")
    for name in ("lag", "in/s", "out/s", "ETA"):
        table.add_column(name, justify="right")
    for x in status.layers or ():
        for i, t in enumerate(sorted(x.topics, key=lambda t: (t.owner or "", t.topic))):
            table.add_row(
                x.layer if i == 0 else "",
                t.owner or "-",
                t.topic,
                f"{t.flow.lag:,}",
                *flow_cells(t.flow),
            )
    return table


def dlq_table(counts: tuple[DlqCount, ...]) -> Table:
    table = Table(title="Dead letters", title_justify="left")
    table.add_column("subscriber")
    table.add_column("topic", overflow="fold")
    table.add_column("records", justify="right")
    for d in counts:
        if d.count is None:
            cell = Text(d.error or "?", style="red")
        else:
            cell = Text(f"{d.count:,}", style="red" if d.count else "")
        table.add_row(d.subscriber, d.topic, cell)
    return table


def canary_table(canaries: tuple[CanaryStatus, ...]) -> RenderableType:
    if not canaries:
        return Text("no canaries configured", style="dim")
    caption = "rollbacks are per worker process; --metrics-url URL reads each worker's state"
    table = Table(title="Canaries", title_justify="left", caption=caption, caption_justify="left")
    for name in ("subscriber", "handler"):
        table.add_column(name, overflow="fold")
    table.add_column("percent", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("state")
    table.add_column("workers", overflow="fold")
    for c in canaries:
        readings = "; ".join(
            f"{r.url}: {r.percent:g}% ({r.rollbacks or 0:g} rollbacks)"
            if r.percent is not None
            else f"{r.url}: {r.error}"
            for r in c.readings
        )
        style = {"rolled_back": "red", "active": "green"}.get(c.state, "dim")
        table.add_row(
            c.subscriber,
            c.handler,
            f"{c.percent:g}%",
            f"{c.error_rate_threshold:.0%}",
            Text(c.state, style=style),
            readings or "-",
        )
    return table


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
