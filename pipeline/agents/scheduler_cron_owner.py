"""Which worker fires cron ticks: the one its consumer group gave ``<ns>.schedules`` partition 0.

The topic has one partition and the scheduler app consumes it in its group, so exactly one
member owns it at a time. Gaining it, the owner reads the whole (compacted) partition to its end
with a group-less consumer, whatever the group's position, to learn every schedule's last fired
tick; then it fires (:class:`~pipeline.agents.scheduler_cron.CronFirer`) until revoked.

Revocation waits for a tick being fired to be recorded: Kafka cannot hand the partition to
another member before every member has finished its revoke callback, so the next owner reads
that record and does not fire the tick again. Only a member thrown out of the group (its session
expired while it fired) can double a tick, and the copy carries the same event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from pipeline.agents.scheduler_cron import CronFirer
from pipeline.client.reader import assigning_consumer
from pipeline.errors import KafkaUnavailableError
from pipeline.topology.models import KafkaSettings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0
Records = list[tuple[bytes | None, bytes | None]]


def read_partition(kafka: KafkaSettings, topic: str, timeout_s: float = READ_TIMEOUT_S) -> Records:
    """Every ``(key, value)`` of partition 0 of ``topic``, oldest first (blocking)."""
    consumer = assigning_consumer(kafka, "msm-schedules-reader")
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        out: Records = []
        if high <= low:
            return out
        consumer.assign([TopicPartition(topic, 0, low)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return out
                raise KafkaUnavailableError(f"reading {topic}: {error.str()}")
            out.append((message.key(), message.value()))
            if (message.offset() or 0) >= high - 1:
                return out
        raise KafkaUnavailableError(f"reading {topic} took over {timeout_s} s")
    finally:
        consumer.close()


class CronOwner:
    """Runs the firer while this worker owns the schedules partition; see the module doc."""

    def __init__(
        self,
        firer: CronFirer,
        topic: str,
        read: Callable[[], Awaitable[Records]],
        clock_ms: Callable[[], int],
    ) -> None:
        self._firer = firer
        self._topic = topic
        self._read = read
        self._clock = clock_ms
        self._owned = asyncio.Event()
        self._changed = asyncio.Event()
        self._firing = asyncio.Lock()
        self._term = 0  # counts ownership grants, so a loop never outlives its grant

    @property
    def owned(self) -> bool:
        return self._owned.is_set()

    def assigned(self, tps: Iterable[Any]) -> None:
        if any(tp.topic == self._topic and tp.partition == 0 for tp in tps):
            self._term += 1
            self._owned.set()
            self._changed.set()

    async def revoked(self) -> None:
        """Stop firing; returns once a tick being fired is recorded."""
        async with self._firing:
            self._owned.clear()
            self._changed.set()

    async def run(self) -> None:
        while True:
            await self._owned.wait()
            term = self._term
            records = await self._read()
            if term != self._term or not self.owned:
                continue
            self._firer.load(records)
            log.info(
                "cron: owning %s; last fired %s",
                self._topic,
                {k: v.isoformat() for k, v in self._firer.last_fired.items()},
            )
            await self._fire_while_owned(term)

    async def _fire_while_owned(self, term: int) -> None:
        while True:
            self._changed.clear()
            async with self._firing:
                if term != self._term or not self.owned:
                    log.info("cron: no longer owning %s", self._topic)
                    return
                await self._firer.fire_due()
            timeout = max(0, self._firer.next_wake_ms() - self._clock()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
