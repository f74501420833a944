"""The Faust app factory. Nothing is created at import time.

Each layer gets its own app, so its own consumer group (``<namespace>.<layer>``): workers
running any mix of layers share each layer's partitions, and no record is consumed twice
because two workers picked different ``--layers``.
"""

from __future__ import annotations

from typing import Any

import faust

from pipeline.topology import Topology

# Offsets are committed at most this often; only acknowledged (acked) events are committed.
COMMIT_INTERVAL_S = 0.5


def kafka_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def create_app(topology: Topology, layer: str, **overrides: Any) -> Any:
    """A Faust app for one layer: raw bytes, manual acks, durable produce, no web server."""
    settings: dict[str, Any] = {
        "broker": kafka_url(topology.kafka.bootstrap_servers),
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_disable_leader": True,
        "topic_allow_declare": False,  # topics are created by `msm topology apply`
        "broker_commit_every": 1000,
        "broker_commit_interval": COMMIT_INTERVAL_S,
        "producer_acks": -1,
        "producer_linger_ms": 1,
        "producer_max_request_size": _max_request_bytes(topology),
        "value_serializer": "raw",
        "key_serializer": "raw",
        "store": "memory://",
    }
    settings.update(overrides)
    return faust.App(f"{topology.namespace}.{layer}", **settings)


def _max_request_bytes(topology: Topology) -> int:
    largest = max((e.max_bytes for e in topology.events.values()), default=1 << 20)
    return largest + (64 << 10)
