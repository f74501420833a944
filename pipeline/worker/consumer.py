"""Faust's consumer, with the fetch pacing MSM wants and without four asyncio tasks per record.

**Fetch pacing.** Faust builds aiokafka's consumer with ``fetch_max_wait_ms=1500`` and
``fetch_min_bytes=1``: every fetch returns as soon as one record is there, so under load each
hop wakes its consumer thread, the event loop, a produce and an ack for a handful of records,
and those wake-ups, not the records, take the CPU. :class:`Fetch` sets both per worker
(``msm worker --fetch-wait-ms``): with a wait, the broker answers once a batch has gathered or
the wait is up; with 0, at the first byte (and within 100 ms when idle, which paused partitions
need, see :mod:`pipeline.worker.pause`). Measured through all five layers in one worker, at
300 events/s: 87 % CPU, p50 230 ms, p99 640 ms with 0; 71 % CPU, p50 102 ms, p99 166 ms with
25 ms. At 100 events/s the wait costs latency instead: p50 44 ms with 0, 93 ms with 25 ms. An
idle worker polls more often with a wait (21 % of a core instead of 14 %).

**Eager hand-over.**
Faust's fetcher hands every record on with ``wait_first(callback(message),
suspend_flow.wait())`` so that a rebalance can interrupt a callback blocked on a full stream
buffer. mode's ``wait_first`` wraps each argument, and the service's stopped and crashed events,
in a task, then cancels the losers: some 40 us per record per hop, a sixth of a hop's CPU,
although the callback almost always finishes at once (the buffer has room). Here the callback's
first step runs eagerly, as Python 3.12's eager tasks would; only a callback that actually waits
becomes a task and races the other arguments as before. Nothing changes for a caller but the
cost.

Both subclass faust's aiokafka driver (``faust-streaming`` 0.15.x, aiokafka 0.14); the worker's
app (:mod:`pipeline.worker.app`) installs :class:`Transport` and names its :class:`Fetch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from faust.transport.drivers import aiokafka as driver
from mode.services import WaitResults

DEFAULT_FETCH_WAIT_MS = 20
_IDLE_WAIT_MS = 100  # with no wait: how long an empty fetch is held at the broker
_BATCH_BYTES = 1 << 20  # with a wait: a fetch returns early only once this much has gathered

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetch:
    """How long the broker may hold a fetch to gather a batch; 0 answers at the first record."""

    wait_ms: int = DEFAULT_FETCH_WAIT_MS

    def __post_init__(self) -> None:
        if not 0 <= self.wait_ms <= 10_000:
            raise ValueError(f"fetch wait must be 0-10000 ms, not {self.wait_ms}")

    @property
    def max_wait_ms(self) -> int:
        return self.wait_ms or _IDLE_WAIT_MS

    @property
    def min_bytes(self) -> int:
        return _BATCH_BYTES if self.wait_ms else 1


async def _finish(coro: Coroutine[Any, Any, Any], yielded: object) -> Any:
    """Drive ``coro`` from where its eager first step stopped, as its own task would."""
    while True:
        failure: BaseException | None = None
        try:
            if yielded is None:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            elif asyncio.isfuture(yielded):
                # What a task does with a yielded future before waiting on it: without this,
                # awaiting it again raises "await wasn't used with future".
                yielded._asyncio_future_blocking = False
                await yielded
            else:
                raise RuntimeError(f"eager step yielded {yielded!r}, not a future")
        except BaseException as exc:  # handed to the coroutine, as its own task would
            if not _read_back(yielded, exc):
                failure = exc
        try:
            yielded = coro.send(None) if failure is None else coro.throw(failure)
        except StopIteration as stop:
            return stop.value


def _read_back(yielded: object, exc: BaseException) -> bool:
    """True if ``exc`` is the outcome of the future the coroutine awaits, which its own await
    reads back when resumed; False for anything else (this task cancelled), thrown into it."""
    if not asyncio.isfuture(yielded) or not yielded.done():
        return False
    return yielded.cancelled() or not isinstance(exc, asyncio.CancelledError)


def _step(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` to its first suspension: (True, result) if it finished, else
    (False, what it yielded). Its exception, if it raised, propagates."""
    try:
        return False, cast(Generator[Any, None, Any], coro).send(None)
    except StopIteration as stop:
        return True, stop.value


def _close(coros: tuple[Any, ...]) -> None:
    """Close coroutines never started: nothing to cancel, no never-awaited warning."""
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


Race = Callable[..., Awaitable[WaitResults]]


async def eager_first(coros: tuple[Any, ...], race: Race) -> WaitResults:
    """``race(*coros)`` (mode's ``wait_first``), but with the first coroutine's first step run
    here: if that finishes it, the others are never started; else the rest of it races them."""
    first = coros[0]
    try:
        done, value = _step(first)
    except BaseException:
        _close(coros[1:])
        raise
    if done:
        _close(coros[1:])
        return WaitResults([first], [value], False)
    rest = asyncio.ensure_future(_finish(first, value))
    results = await race(rest, *coros[1:])
    winners = [first if w is rest else w for w in results.done]
    return WaitResults(winners, results.results, results.stopped)


class _PacedThread(driver.AIOKafkaConsumerThread):
    """faust's consumer thread, building aiokafka's consumer with the app's :class:`Fetch`,
    and numbering what makes a fetched batch stale (see :meth:`EagerConsumer.getmany`).

    ``epoch`` goes up, on this thread, at every revocation and every seek to the committed
    offsets (faust seeks at every assignment), in the same step as the positions change, so no
    batch can be stamped in between. ``batch_epoch`` is the epoch the last batch was fetched
    in. faust's other seeks (``seek``, ``seek_wait``: tables, which MSM does not use) are not
    numbered.
    """

    epoch = 0
    batch_epoch = 0

    def _create_worker_consumer(self, transport: Any) -> Any:
        client = super()._create_worker_consumer(transport)
        fetch: Fetch = getattr(self.app, "msm_fetch", Fetch())
        # aiokafka keeps both as given and hands them to its fetcher when it starts.
        client._fetch_max_wait_ms = fetch.max_wait_ms
        client._fetch_min_bytes = fetch.min_bytes
        return client

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """faust commits only the offsets of partitions still assigned; when a rebalance took
        them all, it hands aiokafka an empty dict, which aiokafka rejects (``ValueError({})``)
        and faust turns into a worker crash (seen in the rebalance-storm chaos scenario). Then
        there is nothing to commit: the partitions' new owners commit their progress. No await
        lies between this check and faust's own filter, so the assignment cannot change between.
        """
        assigned = self.assignment()
        if not any(tp in assigned for tp in offsets):
            return False
        return await super()._commit(offsets)

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - faust's signature
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        self.batch_epoch = self.epoch
        return records

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.epoch += 1
        await super().on_partitions_revoked(revoked)

    async def seek_to_committed(self) -> Any:
        consumer = self._ensure_consumer()

        async def seek() -> Any:
            offsets = await consumer.seek_to_committed()
            self.epoch += 1
            return offsets

        return await self.call_thread(seek)


class EagerConsumer(driver.Consumer):
    """faust's aiokafka consumer with an eager ``wait_first``, the app's fetch pacing, and
    no records from before a rebalance taken as records after it."""

    def _new_consumer_thread(self) -> Any:
        return _PacedThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
        """faust hands a batch from the consumer thread to the event loop, and the loop may run
        a rebalance (revoke, assign, seek to the committed offsets) before it resumes the
        fetch's caller. The stale batch then passes as the new generation's; faust's read
        offset is already the committed one, so it takes the jump to the batch's first offset
        for a gap and counts the offsets in between as acked, then drops them as "already
        read" when they come again. Found by the rebalance-storm chaos scenario: an ordered
        subscriber ran a key's seq 389.. before 379..388, and other events were committed
        without ever running. A batch fetched before a revocation or a seek is dropped here;
        the seek (or the partition's new owner) reads it again from the committed offset."""
        thread = cast(_PacedThread, self._thread)
        async for tp, message in super().getmany(timeout):
            if thread.batch_epoch != thread.epoch:
                log.info("dropped a batch fetched before a rebalance; it is read again")
                return
            yield tp, message

    async def wait_first(
        self,
        *coros: Any,
        timeout: Any = None,  # noqa: ASYNC109 - mode's signature
    ) -> WaitResults:
        if (
            timeout is not None
            or not coros
            or not asyncio.iscoroutine(coros[0])
            or self._stopped.is_set()
            or self._crashed.is_set()
        ):
            return await super().wait_first(*coros, timeout=timeout)
        return await eager_first(coros, super().wait_first)


class Transport(driver.Transport):
    """faust's aiokafka transport, with :class:`EagerConsumer`."""

    Consumer = EagerConsumer
