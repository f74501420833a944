"""Topic names and the planned set of topics (partitions, configs) a topology needs.

Partition counts, chosen so per-key order and parallelism hold at every hop:

* ingress ``<ns>.in.<event>``: the event's ``partitions``;
* shared stages (accepted, rejected, ready, delay tiers, outcomes, tasks): the largest event
  partition count, so no event is squeezed through fewer partitions than it was published on;
* per subscriber (sub, exec, dlq, done): ``max(concurrency.max, largest partition count of
  its events)``, so even an ordered subscriber, which runs one task per partition at a time,
  can reach its ``concurrency.max``;
* ``<ns>.schedules`` (one record per schedule, compacted): 1;
* ``<ns>.cdc`` (positions, snapshot jobs and status of CDC sources, compacted), when any: 1;
* ``<ns>.control`` (one record per subscriber, compacted; ``msm subscriber``): 1.

Topics that carry payloads get ``max.message.bytes`` = largest ``max_bytes`` they may carry plus
:data:`HEADROOM` for headers and batch framing; ingress enforces ``max_bytes`` exactly and rejects
larger payloads to ``<ns>.rejected`` with a reason instead of failing the producer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from pipeline.topology.durations import format_duration, parse_duration
from pipeline.topology.models import EventSpec, Topology

Layer = Literal["frontend", "scheduler", "flow", "delivery", "execution"]
LAYERS: tuple[Layer, ...] = ("frontend", "scheduler", "flow", "delivery", "execution")

DEFAULT_RETENTION = timedelta(days=7)
LONG_RETENTION = timedelta(days=30)  # dead letters and rejects wait for a human
HEADROOM = 64 * 1024


@dataclass(frozen=True)
class TopicNames:
    """Every topic name MSM uses, under one namespace."""

    namespace: str = "msm"

    def ingress(self, event: str) -> str:
        return f"{self.namespace}.in.{event}"

    @property
    def accepted(self) -> str:
        return f"{self.namespace}.accepted"

    @property
    def rejected(self) -> str:
        return f"{self.namespace}.rejected"

    @property
    def ready(self) -> str:
        return f"{self.namespace}.ready"

    @property
    def outcomes(self) -> str:
        return f"{self.namespace}.outcomes"

    @property
    def tasks(self) -> str:
        """Task state changes, keyed by event id: every subscriber's task of one event is in one
        partition, so `msm task show` reads one partition."""
        return f"{self.namespace}.tasks"

    @property
    def schedules(self) -> str:
        """The last fired tick per schedule, so a restart never fires a tick twice (compacted)."""
        return f"{self.namespace}.schedules"

    @property
    def cdc(self) -> str:
        """CDC positions, snapshot jobs and status per source (compacted; see pipeline.cdc)."""
        return f"{self.namespace}.cdc"

    @property
    def control(self) -> str:
        """Operator gating per subscriber (paused, drop cut-off), keyed by name (compacted)."""
        return f"{self.namespace}.control"

    def delay(self, tier: timedelta) -> str:
        return f"{self.namespace}.delay.{format_duration(tier)}"

    def tier_of(self, topic: str) -> timedelta | None:
        """The delay tier of a ``<ns>.delay.<tier>`` topic name, else None."""
        prefix = f"{self.namespace}.delay."
        if not topic.startswith(prefix):
            return None
        try:
            return parse_duration(topic.removeprefix(prefix))
        except ValueError:
            return None

    def sub(self, subscriber: str) -> str:
        return f"{self.namespace}.sub.{subscriber}"

    def execution(self, subscriber: str) -> str:
        return f"{self.namespace}.exec.{subscriber}"

    def dlq(self, subscriber: str) -> str:
        return f"{self.namespace}.dlq.{subscriber}"

    def done(self, subscriber: str) -> str:
        """Task ids the subscriber's handler finished, for dedup (compacted, keyed by task id)."""
        return f"{self.namespace}.done.{subscriber}"


@dataclass(frozen=True)
class TopicPlan:
    """One topic as the topology wants it.

    ``layer`` is the layer whose consumers read the topic (how ``msm lag`` groups it); ``owner``
    the event, delay tier ("30s") or subscriber it serves, or "" for shared topics.
    """

    name: str
    partitions: int
    config: Mapping[str, str]
    layer: Layer
    owner: str = ""
    replication_factor: int = 1
    description: str = field(default="", compare=False)


def plan_topics(topology: Topology) -> list[TopicPlan]:
    """Every topic the topology needs, in pipeline order (layer, then name order within it)."""
    names = TopicNames(topology.namespace)
    events = [topology.events[name] for name in sorted(topology.events)]
    shared = max(e.partitions for e in events)
    largest = max_record_bytes(events)
    base = {
        "cleanup.policy": "delete",
        "min.insync.replicas": str(topology.kafka.min_insync_replicas),
    }
    compact = {**base, "cleanup.policy": "compact"}

    def keep(retention: timedelta, max_message_bytes: int | None = None) -> dict[str, str]:
        config = {**base, "retention.ms": str(retention // timedelta(milliseconds=1))}
        if max_message_bytes is not None:
            config["max.message.bytes"] = str(max_message_bytes)
        return config

    rows: list[tuple[str, int, Layer, str, dict[str, str], str]] = []
    for e in events:
        retention = e.retention or DEFAULT_RETENTION
        rows.append(
            (
                names.ingress(e.name),
                e.partitions,
                "frontend",
                e.name,
                keep(retention, e.max_bytes + HEADROOM),
                "published events",
            )
        )
    rows.append(
        (
            names.rejected,
            shared,
            "frontend",
            "",
            keep(LONG_RETENTION, largest),
            "rejected input with reasons",
        )
    )
    rows.append(
        (
            names.accepted,
            shared,
            "scheduler",
            "",
            keep(DEFAULT_RETENTION, largest),
            "validated events",
        )
    )
    for tier in topology.delay_tiers:
        retention = max(DEFAULT_RETENTION, 2 * tier + timedelta(days=1))
        rows.append(
            (
                names.delay(tier),
                shared,
                "scheduler",
                format_duration(tier),
                keep(retention, largest),
                f"events waiting {format_duration(tier)} or more",
            )
        )
    rows.append((names.schedules, 1, "scheduler", "", compact, "last cron tick per schedule"))
    if topology.cdc:
        what = "CDC positions, snapshots, status"
        rows.append((names.cdc, 1, "scheduler", "", compact, what))
    rows.append(
        (names.ready, shared, "flow", "", keep(DEFAULT_RETENTION, largest), "events due now")
    )
    rows.append(
        (names.tasks, shared, "flow", "", keep(DEFAULT_RETENTION), "task state changes by event id")
    )
    rows.append(
        (
            names.outcomes,
            shared,
            "delivery",
            "",
            keep(DEFAULT_RETENTION, largest),
            "failed attempts, with their payload",
        )
    )
    rows.append((names.control, 1, "delivery", "", compact, "operator gating per subscriber"))
    subscribers = [topology.subscribers[name] for name in sorted(topology.subscribers)]
    per_sub = {s.name: _subscriber_topics(topology, s.name) for s in subscribers}
    for s in subscribers:
        n, size = per_sub[s.name]
        rows.append(
            (
                names.sub(s.name),
                n,
                "delivery",
                s.name,
                keep(DEFAULT_RETENTION, size),
                "tasks to deliver",
            )
        )
        rows.append(
            (names.dlq(s.name), n, "delivery", s.name, keep(LONG_RETENTION, size), "dead letters")
        )
    for s in subscribers:
        n, size = per_sub[s.name]
        rows.append(
            (
                names.execution(s.name),
                n,
                "execution",
                s.name,
                keep(DEFAULT_RETENTION, size),
                "tasks to run",
            )
        )
        window = max(s.dedup_window, timedelta(minutes=1))
        done = {**compact, "cleanup.policy": "compact,delete"}
        done["retention.ms"] = str(window // timedelta(milliseconds=1))
        rows.append((names.done(s.name), n, "execution", s.name, done, "finished task ids"))
    rf = topology.kafka.replication_factor
    return [
        TopicPlan(name, n, dict(sorted(config.items())), layer, owner, rf, what)
        for name, n, layer, owner, config, what in rows
    ]


def _subscriber_topics(topology: Topology, subscriber: str) -> tuple[int, int]:
    """(partitions, max.message.bytes) of a subscriber's sub, exec and dlq topics."""
    spec = topology.subscribers[subscriber]
    own = [topology.events[e] for e in spec.events if e in topology.events]
    return max([spec.concurrency.max, *(e.partitions for e in own)]), max_record_bytes(own)


def by_layer(plans: Iterable[TopicPlan]) -> dict[Layer, list[TopicPlan]]:
    grouped: dict[Layer, list[TopicPlan]] = {layer: [] for layer in LAYERS}
    for p in plans:
        grouped[p.layer].append(p)
    return grouped


def max_record_bytes(events: Iterable[EventSpec]) -> int:
    """What a topic carrying ``events`` accepts: the largest payload plus :data:`HEADROOM`."""
    return max((e.max_bytes for e in events), default=1024 * 1024) + HEADROOM


def min_record_bytes(events: Iterable[EventSpec]) -> int:
    """The smallest such limit among ``events``' ingress topics."""
    return min((e.max_bytes for e in events), default=1024 * 1024) + HEADROOM
