"""Effectively once: a task whose handler already succeeded is not run again when redelivered.

Each success is written to ``<ns>.done.<s>`` (key = task id, value ``{"at": ms}``, compacted,
retention = the dedup window) in the partition of the task's own ``exec`` partition: both topics
have the same partition count, so the done records of exec partition ``p`` are all in done
partition ``p``. Before the first task of a newly assigned partition runs, this worker reads that
done partition up to its end into memory (:class:`DoneSet`), then adds its own successes as they
happen. Entries older than the dedup window count as absent.

A success is acknowledged on Kafka before its offset is, so after a crash (offsets not committed,
every unacked task redelivered) the done records of every task finished before the crash are
there to skip it. What remains: a crash after the handler returned but before its done record was
acknowledged runs that task again; and a partition taken over from a worker still finishing a
task (a rebalance, not a crash) may miss that one task's done record if it is written after the
new owner read the partition. Memory grows with the tasks finished within the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline.agents.execution_records import parse_done
from pipeline.client.reader import assigning_consumer
from pipeline.errors import KafkaUnavailableError
from pipeline.topology.models import KafkaSettings

__all__ = ["DoneLoader", "DoneSet", "read_done"]

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0
RETRY_S = 2.0
Entries = dict[int, dict[str, int]]  # partition -> task id -> finished at (ms)
Read = Callable[[list[int]], Awaitable[Entries]]


class DoneSet:
    """Task ids finished within the window, by partition of the subscriber's exec topic."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._parts: Entries = {}

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._parts.values())

    def add(self, partition: int, task_id: str, at_ms: int) -> None:
        ids = self._parts.setdefault(partition, {})
        ids[task_id] = max(at_ms, ids.get(task_id, at_ms))

    def merge(self, partition: int, entries: dict[str, int]) -> None:
        for task_id, at_ms in entries.items():
            self.add(partition, task_id, at_ms)

    def finished_at(self, partition: int, task_id: str, now_ms: int) -> int | None:
        """When the task finished, if within the window; else None."""
        at = self._parts.get(partition, {}).get(task_id)
        return at if at is not None and now_ms - at <= self.window_ms else None

    def drop(self, partition: int) -> None:
        self._parts.pop(partition, None)

    def prune(self, now_ms: int) -> int:
        """Forget entries older than the window; how many went."""
        gone = 0
        for ids in self._parts.values():
            old = [t for t, at in ids.items() if now_ms - at > self.window_ms]
            for t in old:
                del ids[t]
            gone += len(old)
        return gone


class DoneLoader:
    """Loads done partitions into a :class:`DoneSet`, once per assignment, retrying until read."""

    def __init__(self, done: DoneSet, read: Read, *, retry_s: float = RETRY_S) -> None:
        self._done = done
        self._read = read
        self._retry_s = retry_s
        self._loads: dict[int, asyncio.Task[None]] = {}
        self._all: set[asyncio.Task[None]] = set()  # forgotten ones may still be running
        self._revoked: dict[int, int] = {}  # partition -> times revoked

    def generation(self, partition: int) -> int:
        """Changes whenever ``partition`` is revoked: work begun before belongs to another owner."""
        return self._revoked.get(partition, 0)

    def loaded(self, partition: int) -> bool:
        load = self._loads.get(partition)
        return load is not None and load.done()

    def prefetch(self, partitions: Iterable[int]) -> None:
        """Start reading these partitions (one read for all of them) unless already started."""
        missing = sorted({p for p in partitions if p not in self._loads})
        if missing:
            load = asyncio.ensure_future(self._load(missing))
            self._all.add(load)
            load.add_done_callback(self._all.discard)
            for p in missing:
                self._loads[p] = load

    async def ensure(self, partition: int) -> None:
        """Return once ``partition`` is loaded."""
        self.prefetch([partition])
        await asyncio.shield(self._loads[partition])

    def forget(self, partitions: Iterable[int]) -> None:
        """Revoked: the next assignment reads them again (their next owner may have added some)."""
        for p in partitions:
            self._loads.pop(p, None)
            self._done.drop(p)
            self._revoked[p] = self._revoked.get(p, 0) + 1

    async def close(self) -> None:
        loads = set(self._all)
        self._loads.clear()
        for load in loads:
            load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*loads, return_exceptions=True)

    async def _load(self, partitions: list[int]) -> None:
        while True:
            try:
                entries = await self._read(partitions)
                break
            except KafkaUnavailableError as exc:
                log.warning("execution: reading done records failed, retrying: %s", exc)
                await asyncio.sleep(self._retry_s)
        for p in partitions:
            self._done.merge(p, entries.get(p, {}))


def read_done(
    kafka: KafkaSettings, topic: str, partitions: list[int], timeout_s: float = READ_TIMEOUT_S
) -> Entries:
    """Every done record of these partitions of ``topic``, up to their end now (blocking)."""
    consumer = assigning_consumer(kafka, "msm-done-reader")
    try:
        out: Entries = {p: {} for p in partitions}
        start, end = {}, {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                start[p], end[p] = low, high
        if not start:
            return out
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])
        remaining = set(start)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"reading {topic} took over {timeout_s} s")
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                part = message.partition() or 0
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaUnavailableError(f"reading {topic}: {error.str()}")
                    remaining.discard(part)
                    continue
                _apply(out[part], message.key(), message.value())
                if (message.offset() or 0) >= end[part] - 1:
                    remaining.discard(part)
        return out
    except KafkaException as exc:
        raise KafkaUnavailableError(f"reading {topic}: {exc}") from exc
    finally:
        consumer.close()


def _apply(ids: dict[str, int], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    task_id = key.decode("utf-8", "replace")
    at = parse_done(value)
    if at is None:
        ids.pop(task_id, None)  # a tombstone (or garbage) forgets the task
    else:
        ids[task_id] = max(at, ids.get(task_id, at))
