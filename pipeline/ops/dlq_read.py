"""Reading one partition range of a topic at a time, without joining a consumer group.

The building blocks of :mod:`pipeline.ops.dlq`: assign partitions at chosen offsets, read up to
end offsets captured beforehand (a snapshot, even while the topic grows), and read the redrive
group's committed offsets. librdkafka failures become MSM errors (retriable ones as
:class:`~pipeline.errors.KafkaUnavailableError`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.client.reader import assigning_consumer
from pipeline.errors import KafkaUnavailableError, MSMError
from pipeline.ops.errors import OpsError
from pipeline.topology import Topology

_BATCH = 500
_TRANSIENT = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT})


@dataclass(frozen=True)
class Range:
    """Offsets ``[start, end)`` of one partition to read."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def redrive_group(topology: Topology, subscriber: str) -> str:
    """The consumer group whose committed offsets mark dead letters as redriven."""
    return f"{topology.namespace}.redrive.{subscriber}"


def header_pairs(m: Message) -> tuple[tuple[str, bytes], ...]:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs)


@contextmanager
def open_reader(topology: Topology, subscriber: str) -> Iterator[Consumer]:
    """A consumer that only assigns; its group id is the redrive group, whose marks it reads."""
    consumer = assigning_consumer(topology.kafka, redrive_group(topology, subscriber))
    try:
        yield consumer
    finally:
        consumer.close()


def kafka_error(what: str, exc: KafkaException) -> MSMError:
    """A librdkafka failure as an MSM error: retriable ones as Kafka being unavailable."""
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError) and (error.retriable() or error.code() in _TRANSIENT):
        return KafkaUnavailableError(f"{what}: Kafka is unavailable ({error.str()})")
    return OpsError(f"{what}: {error.str() if isinstance(error, KafkaError) else exc}")


def partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int]:
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise kafka_error(f"reading metadata of {topic}", exc) from None
    if meta is None or meta.error is not None or not meta.partitions:
        raise OpsError(f"dead-letter topic {topic} does not exist (run `msm topology apply`)")
    return sorted(meta.partitions)


def read_ranges(
    consumer: Consumer, topic: str, since: datetime | None, timeout_s: float
) -> list[Range]:
    """Per partition: from the first record at or after ``since`` (else the log start) to the
    current end."""
    found = partitions(consumer, topic, timeout_s)
    try:
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in found
        }
        starts = {p: low for p, (low, _) in marks.items()}
        if since is not None:
            ms = int(since.timestamp() * 1000)
            asked = [TopicPartition(topic, p, ms) for p in found]
            for tp in consumer.offsets_for_times(asked, timeout=timeout_s):
                if tp.error is not None:
                    raise KafkaException(tp.error)
                # -1: no record at or after that time in this partition.
                starts[tp.partition] = tp.offset if tp.offset >= 0 else marks[tp.partition][1]
    except KafkaException as exc:
        raise kafka_error(f"reading offsets of {topic}", exc) from None
    return [Range(p, max(starts[p], marks[p][0]), marks[p][1]) for p in found]


def redrive_marks(
    consumer: Consumer, topic: str, parts: Sequence[int], timeout_s: float
) -> dict[int, int]:
    """Partition -> the redrive group's committed offset: below it, dead letters were redriven."""
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout_s)
    except KafkaException as exc:
        raise kafka_error(f"reading the redrive marks of {topic}", exc) from None
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0 and tp.error is None}


def scan(
    consumer: Consumer,
    topic: str,
    ranges: Sequence[Range],
    timeout_s: float,
    per_partition: int | None = None,
) -> Iterator[Message]:
    """The records of ``ranges`` in each partition's offset order (partitions interleaved);
    a partition stops after ``per_partition`` records. Raises if Kafka stays silent."""
    active = {r.partition: r for r in ranges if r.size}
    if not active:
        return
    counts = dict.fromkeys(active, 0)
    consumer.assign([TopicPartition(topic, p, r.start) for p, r in active.items()])

    def finish(p: int) -> None:  # stop fetching it; later records of it are skipped
        del active[p]
        consumer.pause([TopicPartition(topic, p)])

    quiet_since = time.monotonic()
    try:
        while active:
            batch = consumer.consume(num_messages=_BATCH, timeout=0.2)
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > timeout_s:
                raise KafkaUnavailableError(f"no records from {topic} for {timeout_s:g}s")
            for m in batch:
                error = m.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    if error.retriable() or error.code() in _TRANSIENT:
                        continue  # librdkafka retries; the quiet timeout bounds the wait
                    raise kafka_error(f"reading {topic}", KafkaException(error))
                p = m.partition()
                r = active.get(p) if p is not None else None
                if p is None or r is None:
                    continue
                offset = m.offset() or 0
                if error is not None or offset >= r.end:  # the end: EOF or past the snapshot
                    finish(p)
                    continue
                yield m
                counts[p] += 1
                full = per_partition is not None and counts[p] >= per_partition
                if full or offset >= r.end - 1:
                    finish(p)
    finally:
        consumer.unassign()
