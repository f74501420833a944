"""Pausing a partition in the Kafka client itself, for delay tiers whose head is not due.

Faust's ``Consumer.pause_partitions`` only filters what it hands on: records it already fetched
for a partition paused meanwhile are dropped from the batch being iterated while the client's
position stays past them (``Consumer.getmany``'s ``tp in active_partitions`` test), so they
would be skipped, and faust's gap tracking would then commit past them. aiokafka's own
``pause`` is exact: records not yet returned are discarded without moving the position and
fetched again on ``resume``; those already returned are still delivered. aiokafka runs in
faust's consumer thread, so the calls go through that thread, one at a time (its method queue
has two workers, which could swap a pause and a resume).

Pausing has a second cost: aiokafka keeps one fetch in flight per broker, holding only the
partitions fetchable when it was sent, and faust builds the client with
``fetch_max_wait_ms=1500``. With partitions paused, that request often holds only quiet ones
and waits the full 1.5 s while records pile up on partitions left out of it. Measured at 200
delayed events/s: ready p99 0.4-0.6 s after deliver_at, max 1 s; with a 100 ms wait p99 10 ms,
max 80 ms. Every app's fetch wait is therefore at most 100 ms (:class:`~pipeline.worker.consumer
.Fetch`).

This reaches into faust's and aiokafka's internals (``_thread``, ``_ensure_consumer``):
faust-streaming 0.15.x, aiokafka 0.14.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)


class ClientFlow:
    """Pause and resume partitions of one app's consumer, in the order they were asked for."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = asyncio.Lock()

    async def set_paused(self, tp: tuple[str, int], *, paused: bool) -> None:
        part = TopicPartition(tp[0], tp[1])

        def apply(client: Any) -> None:
            if part not in client.assignment():  # revoked meanwhile: nothing to do
                return
            if paused:
                client.pause(part)
            else:
                client.resume(part)

        await self._call(apply)

    async def on_assigned(self) -> None:
        """Resume what was paused before a rebalance."""

        def apply(client: Any) -> None:
            paused = client.paused()
            if paused:
                log.info("consumer: resuming %d partition(s) paused before", len(paused))
                client.resume(*paused)

        await self._call(apply)

    async def _call(self, fun: Callable[[Any], None]) -> None:
        thread = self._app.consumer._thread

        async def in_thread() -> None:
            fun(thread._ensure_consumer())

        async with self._lock:
            await thread.call_thread(in_thread)
