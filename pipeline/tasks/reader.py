"""Read one event's task history back from ``<ns>.tasks``, for ``msm task show``.

Records are keyed by event id and produced with the key's default partitioner (murmur2, as
Java's and aiokafka's producers do), so one event's history is in one computable partition.
That partition is read from its start to its end offset by assignment: no consumer group is
joined and nothing is committed, so reading never disturbs the layers.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.client.reader import assigning_consumer
from pipeline.errors import KafkaUnavailableError, MSMError
from pipeline.tasks.records import TaskRecord, TaskRecordError, parse_record
from pipeline.topology import KafkaSettings

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 10.0  # without any progress
_BATCH = 1000
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


class TasksTopicError(MSMError):
    """The tasks topic does not exist: the topology was not applied to this Kafka."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c) as a signed 32-bit int, like Java's Utils.murmur2."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    tail = data[length - rest :]
    if rest >= 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def read_task_records(
    kafka: KafkaSettings, topic: str, event_id: str, timeout_s: float = READ_TIMEOUT_S
) -> dict[str, list[TaskRecord]]:
    """Every task record of ``event_id``, grouped per subscriber (by name), oldest first."""
    key = event_id.encode()
    consumer = assigning_consumer(kafka, "msm-task-reader")
    try:
        tp = TopicPartition(topic, partition_for(key, _partitions(consumer, topic, timeout_s)))
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
        found: dict[str, list[TaskRecord]] = {}
        if high > low:
            for value in _read(consumer, tp, low, high, key, timeout_s):
                try:
                    record = parse_record(value)
                except TaskRecordError as exc:
                    log.warning("tasks: skipping a record of %s: %s", event_id, exc)
                    continue
                found.setdefault(record.subscriber, []).append(record)
        return {name: found[name] for name in sorted(found)}
    except KafkaException as exc:
        raise KafkaUnavailableError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> int:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise TasksTopicError(f"topic {topic} does not exist: run `msm topology apply` first")
    return len(metadata.partitions)


def _read(
    consumer: Consumer, tp: TopicPartition, low: int, high: int, key: bytes, timeout_s: float
) -> list[bytes]:
    consumer.assign([TopicPartition(tp.topic, tp.partition, low)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while True:
        messages = consumer.consume(_BATCH, timeout=0.5)
        if not messages and time.monotonic() > deadline:
            raise KafkaUnavailableError(f"reading {tp.topic} made no progress in {timeout_s} s")
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return values
                raise KafkaUnavailableError(f"reading {tp.topic}: {error.str()}")
            deadline = time.monotonic() + timeout_s
            if message.key() == key and message.value() is not None:
                values.append(_value(message.value()))
            if (message.offset() or 0) >= high - 1:
                return values


def _value(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
