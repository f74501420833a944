"""The backlog ahead of a source's events: what its subscribers' path still has to handle.

Counted as consumer lag (end offset minus committed offset) of every hop a change event takes:
the event's ingress topic (frontend), ``accepted`` (scheduler), ``ready`` (flow), and for each
subscriber of the event its ``sub.<s>`` (delivery) plus, for handler subscribers, ``exec.<s>``
(execution). The shared hops carry other events too; that is still work ahead of the source's
events. The worst subscriber counts: a source is paced by its slowest reader, as a task queue
is. A partition never committed counts its whole log (a group that has not started yet).
Batched admin calls (OffsetFetch, ListOffsets), never describe_consumer_groups (librdkafka#4605).
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka.admin import AdminClient

from pipeline.ops.lag import TopicPartition, committed_offsets, end_offsets, open_admin
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

TIMEOUT_S = 5.0


class Backlog:
    """Measures one event type's backlog; blocking (run it in a thread)."""

    def __init__(self, topology: Topology, event: str) -> None:
        names = TopicNames(topology.namespace)
        ns = topology.namespace
        self._path = {
            f"{ns}.frontend": [names.ingress(event)],
            f"{ns}.scheduler": [names.accepted],
            f"{ns}.flow": [names.ready],
        }
        self._subscribers: dict[str, dict[str, list[str]]] = {}
        for spec in topology.subscribers.values():
            if event not in spec.events:
                continue
            hops = {f"{ns}.delivery": [names.sub(spec.name)]}
            if spec.handler is not None:
                hops[f"{ns}.execution"] = [names.execution(spec.name)]
            self._subscribers[spec.name] = hops
        self._kafka = topology.kafka
        self._admin: AdminClient | None = None

    @property
    def subscribers(self) -> list[str]:
        return sorted(self._subscribers)

    def measure(self) -> int:
        admin = self._admin or open_admin(self._kafka.bootstrap_servers, self._kafka.client)
        self._admin = admin
        groups: dict[str, set[str]] = {}
        for hops in [self._path, *self._subscribers.values()]:
            for group, topics in hops.items():
                groups.setdefault(group, set()).update(topics)
        committed = {g: committed_offsets(admin, g, TIMEOUT_S) for g in groups}
        partitions = _partitions(admin, {t for ts in groups.values() for t in ts})
        ends = end_offsets(admin, set(partitions), TIMEOUT_S)

        def lag(hops: Mapping[str, list[str]]) -> int:
            total = 0
            for group, names in hops.items():
                for tp in partitions:
                    if tp[0] in names:
                        end = ends.get(tp) or 0
                        total += max(0, end - committed[group].get(tp, 0))
            return total

        worst = max((lag(h) for h in self._subscribers.values()), default=0)
        return lag(self._path) + worst


def _partitions(admin: AdminClient, topics: set[str]) -> list[TopicPartition]:
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    out: list[TopicPartition] = []
    for name in sorted(topics):
        topic = metadata.topics.get(name)
        if topic is not None and topic.error is None:
            out.extend((name, p) for p in sorted(topic.partitions))
    return out
