"""Per-subscriber lag and dead-letter counts as gauges, sampled by the worker itself.

Why here and like this: a worker knows which partitions it owns and what it committed (Faust
keeps both in memory), so only the log end offsets must be asked for: one ``ListOffsets``
request per sample through a confluent AdminClient in a thread (never
``describe_consumer_groups``, see librdkafka#4605 in delivery_watch). Each worker reports only
its own partitions, so summing ``msm_consumer_lag`` over workers is the group's lag without
double counting. A dead-letter topic belongs to no consumer, so its size (end - start offsets)
is reported by the delivery worker owning partition 0 of the subscriber's ``sub.<s>``: one
reporter per subscriber, whichever worker that is after a rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from mode import Service

from pipeline.metrics import Metrics
from pipeline.ops.lag import open_admin
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics

log = logging.getLogger(__name__)
LAG_EVERY_S = 10.0
DLQ_EVERY = 3  # samples: the dead-letter sizes every 30 s
TP = tuple[str, int]


@dataclass(frozen=True)
class Offsets:
    earliest: Mapping[TP, int]
    latest: Mapping[TP, int]


def topic_lag(
    owned: Iterable[TP], committed: Mapping[TP, int | None], offsets: Offsets
) -> dict[str, int]:
    """Per topic, the records past the committed offset on the owned partitions; a partition
    never committed counts from its earliest offset, one whose end is unknown is left out."""
    lag: dict[str, int] = {}
    for tp in owned:
        end = offsets.latest.get(tp)
        start = committed.get(tp)
        if start is None:
            start = offsets.earliest.get(tp)
        lag.setdefault(tp[0], 0)
        if end is not None and start is not None:
            lag[tp[0]] += max(0, end - start)
    return lag


def dlq_sizes(partitions: Mapping[str, Sequence[TP]], offsets: Offsets) -> dict[str, int]:
    """Per subscriber, records kept in its dead-letter topic (end minus start offsets)."""
    return {
        subscriber: sum(
            max(0, offsets.latest.get(tp, 0) - offsets.earliest.get(tp, 0)) for tp in tps
        )
        for subscriber, tps in partitions.items()
    }


def subscriber_of(topic: str, names: TopicNames, subscribers: Iterable[str]) -> str:
    for name in subscribers:
        if topic in (names.sub(name), names.execution(name)):
            return name
    return ""


class LagSampler(Service):
    """Samples every :data:`LAG_EVERY_S` for the worker's layer apps (``{layer: app}``)."""

    def __init__(
        self, topology: Topology, apps: Mapping[str, Any], metrics: Metrics, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.topology, self.apps, self.metrics = topology, apps, metrics
        self.names = TopicNames(topology.namespace)
        counts = {p.name: p.partitions for p in plan_topics(topology)}
        self._dlq: dict[str, list[TP]] = {
            s: [(self.names.dlq(s), p) for p in range(counts.get(self.names.dlq(s), 0))]
            for s in topology.subscribers
        }
        self._admin: AdminClient | None = None
        self._shown: set[tuple[str, str, str]] = set()
        self._dlq_shown: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def on_started(self) -> None:
        self._task = asyncio.ensure_future(self._sample_forever())

    async def on_stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sample_forever(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(LAG_EVERY_S)
            try:
                await self.sample(dlq=n % DLQ_EVERY == 0)
            except Exception as exc:  # a metric must never stop the worker
                log.debug("lag sample failed: %r", exc)
            n += 1

    async def sample(self, *, dlq: bool = True) -> None:
        owned = {layer: _assignment(app) for layer, app in self.apps.items()}
        dlq_parts = self._dlq_reported(owned.get("delivery", set())) if dlq else {}
        wanted = {tp for tps in owned.values() for tp in tps}
        wanted |= {tp for tps in dlq_parts.values() for tp in tps}
        offsets = await asyncio.to_thread(self._list_offsets, wanted)
        shown: set[tuple[str, str, str]] = set()
        for layer, app in self.apps.items():
            committed = _committed(app)
            for topic, lag in topic_lag(owned[layer], committed, offsets).items():
                sub = subscriber_of(topic, self.names, self.topology.subscribers)
                self.metrics.consumer_lag.labels(layer, topic, sub).set(lag)
                shown.add((layer, topic, sub))
        for labels in self._shown - shown:  # no longer owned here: another worker reports it
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(*labels)
        self._shown = shown
        if dlq:
            self._show_dlq(dlq_sizes(dlq_parts, offsets))

    def _dlq_reported(self, delivery_owned: set[TP]) -> dict[str, list[TP]]:
        return {s: tps for s, tps in self._dlq.items() if (self.names.sub(s), 0) in delivery_owned}

    def _show_dlq(self, sizes: Mapping[str, int]) -> None:
        for subscriber, size in sizes.items():
            self.metrics.dlq_size.labels(subscriber).set(size)
        for subscriber in self._dlq_shown - set(sizes):
            with contextlib.suppress(KeyError):
                self.metrics.dlq_size.remove(subscriber)
        self._dlq_shown = set(sizes)

    def _list_offsets(self, partitions: set[TP]) -> Offsets:
        if not partitions:
            return Offsets({}, {})
        if self._admin is None:
            kafka = self.topology.kafka
            self._admin = open_admin(kafka.bootstrap_servers, dict(kafka.client))
        earliest: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        return Offsets(self._ask(partitions, earliest), self._ask(partitions, latest))

    def _ask(self, partitions: set[TP], spec: OffsetSpec) -> dict[TP, int]:
        assert self._admin is not None
        request = {KafkaTopicPartition(t, p): spec for t, p in sorted(partitions)}
        found: dict[TP, int] = {}
        for tp, future in self._admin.list_offsets(request, request_timeout=5).items():
            with contextlib.suppress(KafkaException, TimeoutError):
                found[(tp.topic, tp.partition)] = future.result(timeout=10).offset
        return found


def _assignment(app: Any) -> set[TP]:
    try:
        return {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    except Exception:  # not started yet
        return set()


def _committed(app: Any) -> dict[TP, int | None]:
    """Faust's in-memory committed offsets (the next offset to read, as Kafka's)."""
    offsets = getattr(app.consumer, "_committed_offset", {})
    return {(tp.topic, tp.partition): offset for tp, offset in dict(offsets).items()}
