"""A confluent-kafka consumer for reading topics by assignment: no group joined, no commits.

Task history, done sets, cron state and dead letters are read this way, from a known start to
the end offsets seen at the start. librdkafka wants a ``group.id`` even then; it names the
reader in broker logs and, for the redrive reader, is the group whose committed marks it reads.
"""

from __future__ import annotations

from confluent_kafka import Consumer

from pipeline.topology.models import KafkaSettings


def assigning_consumer(kafka: KafkaSettings, group_id: str) -> Consumer:
    """A consumer for ``assign()`` only; the caller closes it."""
    return Consumer(
        {
            "log_level": 0,
            **kafka.client,
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
