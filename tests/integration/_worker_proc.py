"""What the frontend and worker tests add to :mod:`tests.worker_support`.

A topology on the repo's example schemas with a small ``max_bytes``, raw records produced the
way MSM's publisher sends them, and a worker that also serves HTTP ingress.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipeline.topology import Topology
from tests.worker_support import FAST_SESSIONS, MSM, REPO, Headers, Record, TopicReader, Worker

SCHEMAS = REPO / "schemas"
Sent = tuple[bytes | None, bytes, Headers]


def frontend_document(*, partitions: int = 3, max_bytes: int = 512) -> dict[str, Any]:
    """file.uploaded (v2 after v1, key file_id) and user.deleted, both with a small max_bytes."""
    return {
        "delay_tiers": ["1s"],
        "events": {
            "file.uploaded": {
                "schema": str(SCHEMAS / "file_uploaded.v2.avsc"),
                "previous_schemas": [str(SCHEMAS / "file_uploaded.v1.avsc")],
                "partitions": partitions,
                "key": "file_id",
                "max_bytes": max_bytes,
            },
            "user.deleted": {
                "schema": str(SCHEMAS / "user_deleted.avsc"),
                "partitions": 1,
                "key": "user_id",
                "max_bytes": max_bytes,
            },
        },
    }


def file_uploaded(file_id: str, size: int = 10) -> dict[str, object]:
    """A valid file.uploaded payload (JSON form, v1 and v2 alike)."""
    return {
        "file_id": file_id,
        "owner_id": "u-1",
        "path": "/photos/cat.png",
        "size": size,
        "mime_type": "image/png",
        "uploaded_at": 1_735_787_045_678,
    }


def as_json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def group(topology: Topology, layer: str) -> str:
    return f"{topology.namespace}.{layer}"


def keyed(
    reader: TopicReader, keys: Sequence[bytes], what: str, timeout_s: float = 30.0
) -> list[Record]:
    """The records with these keys, once every key has at least one."""
    wanted = set(keys)
    reader.wait_for(lambda rs: wanted <= {r.key for r in rs}, what, timeout_s)
    return [r for r in reader.records if r.key in wanted]


class HttpWorker(Worker):
    """``msm worker --layers frontend`` serving HTTP on ``port`` (Worker always adds --no-http)."""

    def __init__(self, topology: Topology, log_path: Path, port: int) -> None:
        self.log_path = log_path
        self._offset = 0
        self._log = log_path.open("ab")
        self.started = time.monotonic()
        command = [str(MSM), "--topology", str(topology.source_path), "worker"]
        command += ["--layers", "frontend", "--http-port", str(port)]
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAST_SESSIONS},
            cwd=REPO,
        )


@functools.cache
def _producer(bootstrap: str) -> Producer:
    """One producer per test process: a new one costs half a second before its first ack."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            # Batches must fit the ingress topic's max.message.bytes (max_bytes + 64 KiB).
            "batch.size": 16384,
        }
    )


def produce(bootstrap: str, topic: str, records: Sequence[Sent]) -> list[tuple[int, int]]:
    """Send raw records (key, value, headers) like MSM's publisher; their (partition, offset)."""
    producer = _producer(bootstrap)
    where: list[tuple[int, int] | None] = [None] * len(records)

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def done(err: KafkaError | None, m: Message) -> None:
            assert err is None, err
            where[index] = (m.partition() or 0, m.offset() or 0)

        return done

    for i, (key, value, headers) in enumerate(records):
        sent: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(topic, value=value, key=key, headers=sent, on_delivery=report(i))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert all(w is not None for w in where)
    return [w for w in where if w is not None]
