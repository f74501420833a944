"""CDC in the scheduler: the worker that owns ``<ns>.cdc`` partition 0 runs every CDC source.

Ownership works as for cron (:mod:`scheduler_cron_owner`): the scheduler app consumes the
one-partition topic in its group, so exactly one member holds it; gaining it, the owner reads
the whole compacted partition (positions, snapshot jobs) and starts a task per source
(:class:`~pipeline.cdc.source.CdcSource`). A replication slot admits one reader, so one owner
is also what PostgreSQL requires. Losing the partition, or shutting down, stops the sources
after their current round: what they published is recorded and acknowledged first.

A source that fails (database down, a table missing, a bad DSN) is logged with its error,
shows it in its status, and is retried with back-off; it never takes the worker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from pipeline.agents.base import LayerContext, Send, raw_topic
from pipeline.agents.scheduler_cron_owner import read_partition
from pipeline.cdc import state as cdc_state
from pipeline.cdc.source import CdcSource
from pipeline.worker.fatal import fatal

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
STOP_TIMEOUT_S = 15.0


class CdcOwner:
    def __init__(self, sources: list[CdcSource], topic: str, ctx: LayerContext) -> None:
        self._sources = sources
        self._topic = topic
        self._kafka = ctx.topology.kafka
        self._tasks: list[asyncio.Task[None]] = []
        self._starter: asyncio.Task[None] | None = None
        self._term = 0
        self._lock = asyncio.Lock()

    def assigned(self, tps: Iterable[Any]) -> None:
        owns = any(tp.topic == self._topic and tp.partition == 0 for tp in tps)
        if owns and self._starter is None and not self._tasks:
            self._term += 1
            self._starter = asyncio.ensure_future(self._start(self._term))

    async def revoked(self) -> None:
        """Stops every source after its current round."""
        self._term += 1
        starter, self._starter = self._starter, None
        if starter is not None:  # still reading the topic: nothing of its own to finish
            starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starter
        async with self._lock:
            for source in self._sources:
                source.stop()
            tasks, self._tasks = self._tasks, []
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
                for task in late:
                    task.cancel()

    def record(self, key: bytes | None, value: bytes | None) -> None:
        """A record on ``<ns>.cdc`` while running: new snapshot requests reach their source."""
        states: dict[str, cdc_state.SourceState] = {}
        cdc_state.apply(states, key, value)
        for source in self._sources:
            found = states.get(source.name)
            for job in found.jobs.values() if found else ():
                source.offer(job)

    async def _start(self, term: int) -> None:
        """Reads the topic and starts the sources; Kafka trouble is retried, never fatal."""
        delay = RETRY_MIN_S
        while term == self._term:
            try:
                records = await asyncio.to_thread(read_partition, self._kafka, self._topic)
            except Exception as exc:  # retried while this worker owns the topic
                log.error("cdc: reading %s: %s (retrying in %.0f s)", self._topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            if term != self._term:
                return
            states = cdc_state.load(records)
            log.info("cdc: owning %s; sources %s", self._topic, [s.name for s in self._sources])
            self._tasks = [
                asyncio.ensure_future(_supervise(s, states.get(s.name, cdc_state.SourceState())))
                for s in self._sources
            ]
            self._starter = None
            return


async def _supervise(source: CdcSource, state: cdc_state.SourceState) -> None:
    source.restart(state)
    delay = RETRY_MIN_S
    while not source.stopping:
        try:
            await source.run()
            return  # stopped on purpose
        except Exception as exc:
            source.failed(exc)
            log.error(
                "cdc %s: %s: %s (%s; retrying in %.0f s)",
                source.name,
                type(exc).__name__,
                exc,
                "retriable" if getattr(exc, "retriable", False) else "needs a fix",
                delay,
            )
            with contextlib.suppress(Exception):
                await source.write_status()
        await source.rest(delay)
        delay = min(RETRY_MAX_S, delay * 2)


def register_cdc(app: Any, ctx: LayerContext, send: Send) -> CdcOwner:
    topic = ctx.names.cdc
    sources = [
        CdcSource(spec, ctx.topology, send, topic, ctx.clock_ms)
        for spec in ctx.topology.cdc.values()
    ]
    owner = CdcOwner(sources, topic, ctx)

    async def membership(stream: Any) -> None:
        # Consuming makes the group assign the partition; records also carry snapshot requests.
        async for event in stream.events():
            owner.record(event.message.key, event.message.value)

    app.agent(raw_topic(app, topic), name="msm.scheduler.cdc")(
        fatal(app, "scheduler cdc")(membership)
    )
    log.info("scheduler: %d cdc source(s): %s", len(sources), ", ".join(s.name for s in sources))
    return owner
