"""Helpers for the publishing tests: a topology on the repo's example schemas, topics, consuming."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from pipeline.topology import Topology, load_topology
from pipeline.topology.topics import TopicNames

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
TIMEOUT_S = 30.0


def write_topology(directory: Path, namespace: str, bootstrap: str = "localhost:9092") -> Path:
    """file.uploaded (v2, v1 before it, key file_id), user.deleted and payment.captured."""
    path = directory / "topology.yaml"
    path.write_text(
        f"""
namespace: {namespace}
kafka: {{bootstrap_servers: "{bootstrap}"}}
events:
  file.uploaded:
    schema: {SCHEMAS / "file_uploaded.v2.avsc"}
    previous_schemas: [{SCHEMAS / "file_uploaded.v1.avsc"}]
    partitions: 3
    key: file_id
    max_bytes: 2048
  user.deleted:
    schema: {SCHEMAS / "user_deleted.avsc"}
    partitions: 1
  payment.captured:
    schema: {SCHEMAS / "payment_captured.avsc"}
    partitions: 1
""",
        encoding="utf-8",
    )
    return path


def file_uploaded(**overrides: object) -> dict[str, object]:
    """A valid file.uploaded (v2) payload in JSON form."""
    payload: dict[str, object] = {
        "file_id": f"f-{uuid.uuid4().hex[:8]}",
        "owner_id": "u-1",
        "path": "/photos/cat.png",
        "size": 1234,
        "mime_type": "image/png",
        "uploaded_at": "2025-01-02T03:04:05.678Z",
    }
    payload.update(overrides)
    return payload


@contextmanager
def ingress_topics(
    admin: AdminClient, topology: Topology, configs: Mapping[str, dict[str, str]] | None = None
) -> Iterator[dict[str, str]]:
    """Create every event's ingress topic (``configs``: per event), delete them afterwards."""
    names = TopicNames(topology.namespace)
    topics = {event: names.ingress(event) for event in topology.events}
    new = [
        NewTopic(
            topics[e],
            num_partitions=spec.partitions,
            replication_factor=1,
            config=(configs or {}).get(e, {}),
        )
        for e, spec in topology.events.items()
    ]
    for future in admin.create_topics(new, operation_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)
    try:
        for event, topic in topics.items():
            _wait_for_leaders(admin, topic, topology.events[event].partitions)
        yield topics
    finally:
        for future in admin.delete_topics(list(topics.values())).values():
            future.result(timeout=TIMEOUT_S)


def _wait_for_leaders(admin: AdminClient, topic: str, partitions: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        parts = meta.partitions if meta is not None and meta.error is None else {}
        if len(parts) == partitions and all(p.leader >= 0 for p in parts.values()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {topic} has no leaders after {TIMEOUT_S} s")


def consume(bootstrap: str, topic: str, count: int, timeout_s: float = TIMEOUT_S) -> list[Message]:
    """Read ``count`` records from the start of ``topic`` with a fresh group; fail if fewer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=count - len(records), timeout=0.5):
                error = message.error()
                if error is not None:
                    raise AssertionError(f"consumer error: {error}")
                records.append(message)
    finally:
        consumer.close()
    assert len(records) == count, f"read {len(records)} of {count} records from {topic}"
    return records


def load(directory: Path, namespace: str, bootstrap: str = "localhost:9092") -> Topology:
    return load_topology(write_topology(directory, namespace, bootstrap))
