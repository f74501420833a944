"""Consumer lag: committed offsets against log end offsets, per group, topic and partition.

The numbers follow Kafka's own ``kafka-consumer-groups --describe`` so the two can be compared
line by line: lag is ``end - committed``; a partition without a committed offset has no lag
(Kafka prints ``-``), and it is listed only while a member holds it. Collection does I/O with a
confluent AdminClient; everything else here is pure data, so renderers and tests need no broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient

# Typed names that confluent_kafka.admin re-exports only implicitly (mypy --strict rejects those).
from confluent_kafka.admin._group import ConsumerGroupDescription
from confluent_kafka.admin._listoffsets import OffsetSpec

from pipeline.errors import KafkaUnavailableError
from pipeline.ops.errors import OpsError

TopicPartition = tuple[str, int]
_T = TypeVar("_T")
_UNAVAILABLE = frozenset(
    {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
)

# Kafka's own spelling of group states where it is not just the enum name in title case.
_STATE_NAMES = {
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
}


@dataclass(frozen=True)
class Member:
    """The group member a partition is assigned to (Kafka's CONSUMER-ID, HOST, CLIENT-ID)."""

    member_id: str
    client_id: str
    host: str


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here (Kafka prints "-")
    end: int | None  # None: the end offset could not be read (topic deleted, no leader)
    member: Member | None = None

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.end is None:
            return None
        return self.end - self.committed


@dataclass(frozen=True)
class TopicLag:
    topic: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        """Sum of the known partition lags; partitions without a commit count as none."""
        return sum(p.lag for p in self.partitions if p.lag is not None)

    @property
    def uncommitted(self) -> int:
        return sum(1 for p in self.partitions if p.committed is None)


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    members: int
    topics: tuple[TopicLag, ...]
    error: str | None = None  # set when the group could not be read; topics is then empty
    member_list: tuple[Member, ...] = ()  # every member, also those without partitions

    @property
    def lag(self) -> int:
        return sum(t.lag for t in self.topics)

    @property
    def uncommitted(self) -> int:
        return sum(t.uncommitted for t in self.topics)


@dataclass(frozen=True)
class LagReport:
    groups: tuple[GroupLag, ...]
    collected_at: float  # wall clock (time.time()), for people and JSON
    monotonic: float  # time.monotonic(), for rates between two reports

    @property
    def lag(self) -> int:
        return sum(g.lag for g in self.groups)


@dataclass(frozen=True)
class LagRates:
    """Change of lag per second between two reports; positive means falling behind."""

    seconds: float
    by_group: Mapping[str, float] = field(default_factory=dict)
    by_topic: Mapping[tuple[str, str], float] = field(default_factory=dict)


def build_group_lag(
    group: str,
    state: str,
    members: int,
    committed: Mapping[TopicPartition, int],
    assigned: Mapping[TopicPartition, Member],
    ends: Mapping[TopicPartition, int | None],
    member_list: Sequence[Member] = (),
) -> GroupLag:
    """Joins one group's committed offsets, assignment and end offsets into sorted rows."""
    by_topic: dict[str, list[PartitionLag]] = {}
    for tp in sorted(set(committed) | set(assigned)):
        row = PartitionLag(tp[0], tp[1], committed.get(tp), ends.get(tp), assigned.get(tp))
        by_topic.setdefault(tp[0], []).append(row)
    topics = tuple(TopicLag(name, tuple(rows)) for name, rows in sorted(by_topic.items()))
    return GroupLag(group, state, members, topics, member_list=tuple(member_list))


def lag_rates(previous: LagReport, current: LagReport) -> LagRates:
    """Rates for the groups and topics present in both reports."""
    seconds = current.monotonic - previous.monotonic
    if seconds <= 0:
        return LagRates(seconds)
    before = {g.group: g for g in previous.groups}
    by_group: dict[str, float] = {}
    by_topic: dict[tuple[str, str], float] = {}
    for group in current.groups:
        old = before.get(group.group)
        if old is None:
            continue
        by_group[group.group] = (group.lag - old.lag) / seconds
        old_topics = {t.topic: t.lag for t in old.topics}
        for topic in group.topics:
            if topic.topic in old_topics:
                by_topic[(group.group, topic.topic)] = (
                    topic.lag - old_topics[topic.topic]
                ) / seconds
    return LagRates(seconds, by_group, by_topic)


def open_admin(bootstrap_servers: str, client: Mapping[str, str] | None = None) -> AdminClient:
    """An AdminClient for lag queries; ``client`` carries extra librdkafka settings (security)."""
    # librdkafka would log every refused connection to stderr; failures reach us as exceptions.
    return AdminClient({"log_level": 0, **(client or {}), "bootstrap.servers": bootstrap_servers})


def collect_lag(
    admin: AdminClient, groups: Sequence[str] = (), timeout_s: float = 10.0
) -> LagReport:
    """Reads lag for ``groups`` (all consumer groups when empty) in a few batched admin calls.

    A named group that does not exist is reported with ``error`` set; nothing is raised for it.
    """
    group_ids = sorted(set(groups)) or _list_groups(admin, timeout_s)
    if not group_ids:
        return LagReport((), time.time(), time.monotonic())
    descriptions = admin.describe_consumer_groups(group_ids, request_timeout=timeout_s)
    offset_futures = {g: _offsets_request(admin, g, timeout_s) for g in group_ids}
    read: dict[str, tuple[ConsumerGroupDescription, dict[TopicPartition, int]]] = {}
    failed: dict[str, str] = {}
    for g in group_ids:
        try:
            description = _result(descriptions[g], timeout_s)
            committed = _committed(_result(offset_futures[g], timeout_s).topic_partitions)
        except KafkaException as exc:
            failed[g] = str(exc.args[0])
            continue
        read[g] = (description, committed)
    wanted = {tp for _, committed in read.values() for tp in committed}
    assigned = {g: _assignment(d) for g, (d, _) in read.items()}
    wanted.update(tp for a in assigned.values() for tp in a)
    ends = end_offsets(admin, wanted, timeout_s)
    result: list[GroupLag] = []
    for g in group_ids:
        if g in failed:
            result.append(GroupLag(g, "Unknown", 0, (), failed[g]))
            continue
        description, committed = read[g]
        state = _STATE_NAMES.get(description.state.name, description.state.name.title())
        if state == "Dead" and not committed:
            if groups:  # asked for by name: say so; when listing all, it just went away
                result.append(GroupLag(g, state, 0, (), f"consumer group {g!r} does not exist"))
            continue
        members = [Member(m.member_id, m.client_id, m.host) for m in description.members]
        result.append(
            build_group_lag(g, state, len(members), committed, assigned[g], ends, members)
        )
    return LagReport(tuple(result), time.time(), time.monotonic())


def committed_offsets(
    admin: AdminClient, group: str, timeout_s: float
) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions it never committed are left out)."""
    return _committed(
        _result(_offsets_request(admin, group, timeout_s), timeout_s).topic_partitions
    )


def _offsets_request(
    admin: AdminClient, group: str, timeout_s: float
) -> Future[ConsumerGroupTopicPartitions]:
    request = [ConsumerGroupTopicPartitions(group)]
    return admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[group]


def _list_groups(admin: AdminClient, timeout_s: float) -> list[str]:
    listing = _result(admin.list_consumer_groups(request_timeout=timeout_s), timeout_s)
    if listing.errors:
        error = listing.errors[0]  # KafkaError objects, despite the annotation
        if isinstance(error, KafkaError) and error.code() in _UNAVAILABLE:
            raise KafkaUnavailableError(f"Kafka is unavailable: {error.str()}")
        raise OpsError(f"listing consumer groups failed: {error}")
    return sorted(g.group_id for g in listing.valid or ())


def _committed(partitions: Iterable[KafkaTopicPartition] | None) -> dict[TopicPartition, int]:
    # Offsets below zero mean "no commit" (OFFSET_INVALID); Kafka leaves those out too.
    return {
        (p.topic, p.partition): p.offset
        for p in partitions or ()
        if p.offset >= 0 and p.error is None
    }


def _assignment(description: ConsumerGroupDescription) -> dict[TopicPartition, Member]:
    found: dict[TopicPartition, Member] = {}
    for m in description.members:
        member = Member(m.member_id, m.client_id, m.host)
        for p in m.assignment.topic_partitions if m.assignment else ():
            found[(p.topic, p.partition)] = member
    return found


def end_offsets(
    admin: AdminClient, partitions: set[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int | None]:
    if not partitions:
        return {}
    # confluent-kafka 2.16 leaves OffsetSpec.latest() unannotated; it returns an OffsetSpec.
    latest: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    request = {KafkaTopicPartition(t, p): latest for t, p in sorted(partitions)}
    futures = admin.list_offsets(request, request_timeout=timeout_s)
    ends: dict[TopicPartition, int | None] = {}
    for tp, future in futures.items():
        try:
            ends[(tp.topic, tp.partition)] = _result(future, timeout_s).offset
        except KafkaException:
            ends[(tp.topic, tp.partition)] = None  # deleted topic or no leader: unknown end
    return ends


def _result(future: Future[_T], timeout_s: float) -> _T:
    """Waits for an admin future, turning a broker that does not answer into a retriable error."""
    try:
        return future.result(timeout=timeout_s + 5)
    except TimeoutError as exc:
        raise KafkaUnavailableError(f"Kafka did not answer within {timeout_s:g}s") from exc
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() in _UNAVAILABLE:
            raise KafkaUnavailableError(f"Kafka is unavailable: {error.str()}") from exc
        raise
