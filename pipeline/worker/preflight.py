"""Checks run before a worker starts, so a misconfigured worker exits at once with the reason.

Without them Faust subscribes to a missing topic and waits forever without a word, and an
unreachable broker shows up only as reconnect noise: a worker that looks alive and does nothing.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.topology import Topology
from pipeline.topology.topics import plan_topics

_SHOWN = 8


def check_topics(topology: Topology, timeout_s: float = 10.0) -> None:
    """Raise unless Kafka answers and has every topic of the topology's plan."""
    kafka = topology.kafka
    admin = AdminClient(
        {"log_level": 0, **kafka.client, "bootstrap.servers": kafka.bootstrap_servers}
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers} does not answer: {exc.args[0].str()}"
        ) from None
    missing = [p.name for p in plan_topics(topology) if p.name not in metadata.topics]
    if missing:
        shown = ", ".join(missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise ConfigError(
            f"{len(missing)} topics of namespace {topology.namespace!r} are missing on "
            f"{kafka.bootstrap_servers} ({shown}{more}); run `msm topology apply` first"
        )
