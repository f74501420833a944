"""The operator's side of CDC: read every source's position, jobs and status from ``<ns>.cdc``,
and request snapshots (the owning scheduler worker picks the request up within a second)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaException

from pipeline.cdc import state as cdc_state
from pipeline.client.reader import assigning_consumer
from pipeline.ops.dlq_read import kafka_error, read_ranges, scan
from pipeline.ops.errors import OpsError, unknown_name
from pipeline.ops.produce import produce_acked
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

READ_TIMEOUT_S = 10.0


class UnknownSourceError(OpsError):
    """No CDC source of that name in the topology."""


def read_sources(
    topology: Topology, timeout_s: float = READ_TIMEOUT_S
) -> dict[str, cdc_state.SourceState]:
    """Every declared source's state (empty for a source that never ran)."""
    topic = TopicNames(topology.namespace).cdc
    consumer = assigning_consumer(topology.kafka, f"{topology.namespace}.cdc-cli")
    found: dict[str, cdc_state.SourceState] = {}
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise kafka_error(f"reading metadata of {topic}", exc) from None
        if meta is None or meta.error is not None or not meta.partitions:
            raise OpsError(f"CDC topic {topic} does not exist (run `msm topology apply`)")
        for m in scan(consumer, topic, read_ranges(consumer, topic, None, timeout_s), timeout_s):
            cdc_state.apply(found, m.key(), m.value())
    finally:
        consumer.close()
    return {name: found.get(name, cdc_state.SourceState()) for name in sorted(topology.cdc)}


def request_snapshot(
    topology: Topology, source: str, subscriber: str | None
) -> cdc_state.SnapshotJob:
    """Ask the running source to publish every existing row (op ``r``), to ``subscriber`` only
    when given (it must subscribe to the source's event), else to every subscriber."""
    check_source(topology, source)
    event = topology.cdc[source].event
    if subscriber is not None:
        spec = topology.subscribers.get(subscriber)
        if spec is None or event not in spec.events:
            takers = sorted(s.name for s in topology.subscribers.values() if event in s.events)
            raise OpsError(
                f"--subscriber {subscriber!r}: expected a subscriber of {event} "
                f"({', '.join(takers) or 'none'})"
            )
    now = time.time_ns() // 1_000_000
    job = cdc_state.SnapshotJob(
        uuid.uuid4().hex[:12], source, subscriber, requested_at_ms=now, updated_at_ms=now
    )
    key, value = cdc_state.job_record(job)
    produce_acked(topology, TopicNames(topology.namespace).cdc, key, value)
    return job


def check_source(topology: Topology, source: str) -> None:
    if source in topology.cdc:
        return
    raise UnknownSourceError(unknown_name("cdc source", "sources", source, topology.cdc))
