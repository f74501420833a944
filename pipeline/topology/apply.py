"""Make the cluster match the topology's topic plan, without ever destroying anything.

Missing topics are created, differing configs set, partition counts raised only when asked
(growing remaps keys to partitions, which breaks per-key order across the change). Topics are
never deleted and partitions never lowered; both are reported as warnings instead.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# Typed here; confluent_kafka.admin imports them without re-exporting them for mypy.
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewPartitions, NewTopic

from pipeline.errors import KafkaUnavailableError
from pipeline.topology.errors import ApplyError
from pipeline.topology.models import KafkaSettings, Topology
from pipeline.topology.topics import TopicPlan, plan_topics

_UNAVAILABLE = frozenset(
    {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
)


@dataclass(frozen=True)
class ConfigChange:
    topic: str
    key: str
    old: str | None
    new: str


@dataclass(frozen=True)
class PartitionChange:
    topic: str
    old: int
    new: int


@dataclass(frozen=True)
class ApplyReport:
    """What apply did, or with ``dry_run`` what it would do; ``would_grow`` needs the flag."""

    created: tuple[str, ...] = ()
    altered: tuple[ConfigChange, ...] = ()
    grown: tuple[PartitionChange, ...] = ()
    would_grow: tuple[PartitionChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    dry_run: bool = False


def open_admin(kafka: KafkaSettings) -> AdminClient:
    # Failures surface as errors of the calls; librdkafka need not also print them.
    return AdminClient(
        {"log_level": 0, **kafka.client, "bootstrap.servers": kafka.bootstrap_servers}
    )


def apply_topology(
    topology: Topology,
    admin: AdminClient | None = None,
    *,
    grow_partitions: bool = False,
    dry_run: bool = False,
    timeout_s: float = 30.0,
) -> ApplyReport:
    """Create, alter and (with ``grow_partitions``) grow topics; idempotent.

    With ``dry_run`` nothing changes, but Kafka still validates the would-be requests.
    """
    admin = admin or open_admin(topology.kafka)
    plans = plan_topics(topology)
    existing = _existing(admin, topology.kafka.bootstrap_servers, timeout_s)
    missing = [p for p in plans if p.name not in existing]
    present = [p for p in plans if p.name in existing]
    created = _create(admin, missing, dry_run, timeout_s)
    current = _describe(admin, [p.name for p in present], timeout_s)
    altered = [
        ConfigChange(p.name, key, current[p.name].get(key), value)
        for p in present
        for key, value in p.config.items()
        if current[p.name].get(key) != value
    ]
    _alter(admin, altered, dry_run, timeout_s)
    warnings: list[str] = []
    growth: list[PartitionChange] = []
    for p in present:
        partitions, replicas = existing[p.name]
        if partitions < p.partitions:
            growth.append(PartitionChange(p.name, partitions, p.partitions))
        elif partitions > p.partitions:
            warnings.append(
                f"{p.name}: has {partitions} partitions, the topology asks for {p.partitions}; "
                "partitions are never removed"
            )
        if replicas != p.replication_factor:
            warnings.append(
                f"{p.name}: replication factor is {replicas}, the topology asks for "
                f"{p.replication_factor}; apply does not reassign replicas"
            )
    grown = growth if grow_partitions else []
    _grow(admin, grown, dry_run, timeout_s)
    if grown:
        warnings.append(
            "growing partitions moves keys to new partitions: per-key order holds "
            "only among records produced after the change"
        )
    if growth and not grow_partitions:
        warnings.append("some topics would grow; rerun with --grow-partitions to grow them")
    changed = {c.topic for c in altered} | {g.topic for g in growth}
    return ApplyReport(
        created=tuple(created),
        altered=tuple(altered),
        grown=tuple(grown),
        would_grow=tuple([] if grow_partitions else growth),
        unchanged=tuple(p.name for p in present if p.name not in changed),
        warnings=tuple(warnings),
        dry_run=dry_run,
    )


def _existing(admin: AdminClient, bootstrap: str, timeout_s: float) -> dict[str, tuple[int, int]]:
    """Topic -> (partition count, replication factor)."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    out = {}
    for name, topic in metadata.topics.items():
        replicas = min((len(p.replicas) for p in topic.partitions.values()), default=0)
        out[name] = (len(topic.partitions), replicas)
    return out


def _create(
    admin: AdminClient, plans: Sequence[TopicPlan], dry_run: bool, timeout_s: float
) -> list[str]:
    if not plans:
        return []
    new = [
        NewTopic(
            p.name,
            num_partitions=p.partitions,
            replication_factor=p.replication_factor,
            config=dict(p.config),
        )
        for p in plans
    ]
    futures = admin.create_topics(
        new, operation_timeout=timeout_s, request_timeout=timeout_s, validate_only=dry_run
    )
    # A topic that exists by now was created by a concurrent apply: not ours to report.
    results = _results(futures, "create", timeout_s, ok={KafkaError.TOPIC_ALREADY_EXISTS})
    if not dry_run:
        _wait_for_leaders(admin, {p.name: p.partitions for p in plans}, timeout_s)
    return [name for name, _ in results]


def _describe(
    admin: AdminClient, names: Sequence[str], timeout_s: float
) -> dict[str, dict[str, str | None]]:
    if not names:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=timeout_s
    )
    return {
        resource.name: {key: entry.value for key, entry in result.items()}
        for resource, result in _results(futures, "describe", timeout_s)
    }


def _alter(
    admin: AdminClient, changes: Sequence[ConfigChange], dry_run: bool, timeout_s: float
) -> None:
    by_topic: dict[str, list[ConfigEntry]] = {}
    for c in changes:
        by_topic.setdefault(c.topic, []).append(
            ConfigEntry(c.key, c.new, incremental_operation=AlterConfigOpType.SET)
        )
    if by_topic:
        resources = [
            ConfigResource(ResourceType.TOPIC, t, incremental_configs=e)
            for t, e in by_topic.items()
        ]
        futures = admin.incremental_alter_configs(
            resources, request_timeout=timeout_s, validate_only=dry_run
        )
        _results(futures, "alter the config of", timeout_s)


def _grow(
    admin: AdminClient, growth: Sequence[PartitionChange], dry_run: bool, timeout_s: float
) -> None:
    if growth:
        futures = admin.create_partitions(
            [NewPartitions(g.topic, g.new) for g in growth],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
            validate_only=dry_run,
        )
        _results(futures, "add partitions to", timeout_s)
        if not dry_run:
            _wait_for_leaders(admin, {g.topic: g.new for g in growth}, timeout_s)


def _results(
    futures: Mapping[Any, Any], action: str, timeout_s: float, ok: Collection[int] = ()
) -> list[tuple[Any, Any]]:
    """Every future's result; all failures are collected into one error, naming each topic."""
    results, failures, unavailable = [], [], False
    for key, future in futures.items():
        try:
            results.append((key, future.result(timeout=timeout_s)))
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in ok:
                continue
            unavailable = unavailable or err.code() in _UNAVAILABLE
            failures.append(f"cannot {action} {getattr(key, 'name', key)}: {err.str()}")
    if failures:
        raise (KafkaUnavailableError if unavailable else ApplyError)("; ".join(failures))
    return results


def _wait_for_leaders(admin: AdminClient, partitions: Mapping[str, int], timeout_s: float) -> None:
    """Creation is acknowledged by the controller; wait until metadata shows every leader, so a
    client started right after apply finds its partitions."""
    deadline = time.monotonic() + timeout_s
    pending = dict(partitions)
    while pending:
        topics = admin.list_topics(timeout=timeout_s).topics
        for name, count in list(pending.items()):
            topic = topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) >= count
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                del pending[name]
        if pending and time.monotonic() >= deadline:
            raise KafkaUnavailableError(
                f"no partition leaders after {timeout_s}s for {', '.join(sorted(pending))}"
            )
        if pending:
            time.sleep(0.1)
