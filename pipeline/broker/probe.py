"""Is a Kafka broker answering, and is a port taken: cheap checks used before and after start."""

from __future__ import annotations

import logging
import socket

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

_quiet = logging.getLogger("pipeline.broker.probe.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def _host_port(server: str) -> tuple[str, int] | None:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "localhost", int(port)


def accepts_connections(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something listens on host:port (Kafka or not)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def is_answering(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request within the timeout.

    Refused TCP connections return False at once, so polling during start-up stays cheap;
    librdkafka's own connection errors go to a silent logger instead of the terminal.
    """
    servers = [hp for s in bootstrap.split(",") if (hp := _host_port(s)) is not None]
    if servers and not any(accepts_connections(h, p, min(timeout_s, 1.0)) for h, p in servers):
        return False
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "log_level": 0,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        },
        logger=_quiet,
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)
