"""The gate at the head of one subscriber's queue: records in, tasks out at the pace allowed.

A :class:`Pump` is fed every record its agent takes from the subscriber's topic and never makes
the agent wait, so a subscriber that is slow, held or at its limits cannot stall the consumer
that the worker's other subscribers share. Records are parked in memory instead, and a partition
with more than :data:`PARK_HIGH` parked is paused in the Kafka client: the backlog waits in
Kafka, memory holds at most a fetch's read-ahead per partition.

A parked task is dispatched (``process`` called) while every limit allows it:

* in flight below :attr:`Pump.limit`: this worker's share of ``max_in_flight`` (its share of the
  topic's partitions), lowered further by ``concurrency`` and ``adaptive`` when set;
* a token from the rate limiter (the same share of ``rate``);
* no hold (an unhealthy target, a target's ``Retry-After``, an operator's pause);
* ``ordered``: nothing else of its partition in flight, and it is the partition's oldest.

Among the tasks that could go, priority lanes decide (high before normal before low, with the
anti-starvation turn of :class:`~pipeline.gate.priority.LanePicker`). Offsets are acknowledged in
order once ``process`` returned for them and for everything before them, so a commit never
passes unfinished work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import get_args

from pipeline import headers as h
from pipeline.gate.priority import LANES, Lane, LanePicker
from pipeline.gate.ratelimit import TokenBucket, default_burst
from pipeline.metrics import LayerFlow, process_metrics
from pipeline.topology.durations import Rate

log = logging.getLogger(__name__)

TP = tuple[str, int]
PARK_HIGH = 256  # parked records of one partition above which it is paused
PARK_LOW = 64  # ... and below which it is resumed


@dataclass(frozen=True)
class Task:
    """One record of a subscriber's topic: a task, payload untouched."""

    tp: TP
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    header_list: list[tuple[str, bytes]]
    timestamp_ms: int


Process = Callable[[Task], Awaitable[None]]
Ack = Callable[[], Awaitable[object]]
SetPaused = Callable[[TP, bool], Awaitable[None]]


@dataclass(eq=False)
class _Entry:
    task: Task
    lane: Lane
    ack: Ack
    part: _Part
    state: str = "parked"  # parked, running, done; failed (unfinished) or dropped: never acked


@dataclass(eq=False)
class _Part:
    tp: TP
    entries: deque[_Entry] = field(default_factory=deque)  # offset order, until acked
    parked: int = 0
    running: int = 0
    paused: bool = False
    active: bool = True


class Pump:
    """One subscriber's gate in one worker; see the module docstring."""

    def __init__(
        self,
        layer: str,
        subscriber: str,
        process: Process,
        *,
        max_in_flight: int,
        partitions: int,
        rate: Rate | None = None,
        ordered: bool = False,
        default_lane: Lane = "normal",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layer, self.subscriber = layer, subscriber
        self.max_in_flight, self.partitions, self.rate = max_in_flight, max(1, partitions), rate
        self.ordered, self.default_lane = ordered, default_lane
        self.concurrency: int | None = None
        self.adaptive: int | None = None
        # Counted (msm_events_in/out) and run in the task's log context (trace id in logs).
        self._process = LayerFlow(process_metrics(), layer).observed(process, subscriber)
        self._clock = clock
        self._parts: dict[TP, _Part] = {}
        self._lanes: dict[Lane, deque[_Entry]] = {lane: deque() for lane in LANES}
        self._picker = LanePicker()
        self._holds: set[str] = set()
        self._owned = self.partitions
        self._bucket = self._new_bucket()
        self._wake = asyncio.Event()
        self._failure: BaseException | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._set_paused: SetPaused | None = None
        self._acking = asyncio.Lock()  # acks of one pump go out one at a time, in offset order
        self._fenced: set[TP] = set()  # revoked, not assigned again yet: late records dropped
        self._generations: dict[TP, int] = {}  # bumped when a partition is revoked
        self._revoked: dict[TP, asyncio.Event] = {}
        self._unheld = asyncio.Event()
        self._unheld.set()
        self._timers: dict[str, asyncio.TimerHandle] = {}  # holds that end by themselves
        self._stopped = False
        self.in_flight = 0
        self.parked = 0
        metrics = process_metrics()
        self._m_in_flight = metrics.gate_in_flight.labels(layer, subscriber)
        self._m_limit = metrics.gate_limit.labels(layer, subscriber)
        self._m_parked = metrics.gate_parked.labels(layer, subscriber)
        self._m_held = metrics.gate_held.labels(layer, subscriber)
        self._m_dispatched = metrics.gate_dispatched.labels(layer, subscriber)
        self._m_rate = metrics.gate_rate_limit.labels(layer, subscriber) if rate else None
        self._m_rate_limited = metrics.gate_rate_limited.labels(layer, subscriber)
        self._show_rate()

    # -- limits ---------------------------------------------------------------------------

    def share(self, value: int) -> int:
        """This worker's part of a subscriber-wide count: its share of the partitions, >= 1."""
        return max(1, value * self._owned // self.partitions)

    @property
    def limit(self) -> int:
        """In-flight tasks this worker may have: its share of ``max_in_flight``, further capped."""
        share = self.share(self.max_in_flight)
        for cap in (self.concurrency, self.adaptive):
            if cap is not None:
                share = min(share, max(1, cap))
        return share

    @property
    def held(self) -> bool:
        return bool(self._holds)

    def hold(self, reason: str) -> None:
        """Dispatch nothing new until released; the caller logs why (it knows the target)."""
        if reason not in self._holds:
            self._holds.add(reason)
            self._unheld.clear()
            self._m_held.set(1)
            log.debug("%s %s: held: %s", self.layer, self.subscriber, reason)

    def hold_for(self, reason: str, seconds: float) -> bool:
        """Hold for ``seconds`` (a target's ``Retry-After``), then release by itself; a hold
        already ending later under the same reason is kept. True when it was not held so."""
        loop = asyncio.get_running_loop()
        until = loop.time() + max(0.0, seconds)
        timer = self._timers.get(reason)
        if timer is not None and timer.when() >= until:
            return False
        new = reason not in self._holds
        if timer is not None:
            timer.cancel()
        self.hold(reason)
        self._timers[reason] = loop.call_at(until, self._expire, reason)
        return new

    def _expire(self, reason: str) -> None:
        self._timers.pop(reason, None)
        self.release(reason)

    def release(self, reason: str) -> None:
        timer = self._timers.pop(reason, None)
        if timer is not None:
            timer.cancel()
        if reason in self._holds:
            self._holds.discard(reason)
            self._m_held.set(1 if self._holds else 0)
            if not self._holds:
                self._unheld.set()
            log.debug("%s %s: released: %s", self.layer, self.subscriber, reason)
            self._wake.set()

    def backlog(self) -> int:
        return self.parked

    def generation(self, tp: TP) -> int:
        """Changes when ``tp`` is revoked (or the pump stops): work begun before is not ours."""
        return self._generations.get(tp, 0)

    async def wait_to_retry(self, tp: TP, seconds: float) -> bool:
        """Sleep before an in-place retry (ordered subscribers), then wait out any hold; False
        if ``tp`` was revoked meanwhile: its new owner has the task, this worker drops it."""
        generation = self.generation(tp)
        revoked = self._revoked.setdefault(tp, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(revoked.wait(), seconds)
        while self._holds and self.generation(tp) == generation:
            waits = [asyncio.ensure_future(e.wait()) for e in (self._unheld, revoked)]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
        return self.generation(tp) == generation

    def set_owned(self, owned: int) -> None:
        """This worker's partition count of the topic, after a rebalance: its share."""
        self._owned = max(0, min(owned, self.partitions))
        if self.rate is not None and self._bucket is not None:
            rate, burst = self._shared_rate()
            self._bucket.set_rate(rate, burst, self._clock())
        self._show_rate()
        self._wake.set()

    def _show_rate(self) -> None:
        if self._m_rate is not None and self.rate is not None:
            rate, _ = self._shared_rate()
            self._m_rate.set(rate.count / rate.per.total_seconds())

    def _shared_rate(self) -> tuple[Rate, float]:
        assert self.rate is not None
        fraction = max(self._owned, 1) / self.partitions
        rate = Rate(count=self.rate.count, per=self.rate.per / fraction)
        return rate, max(1.0, default_burst(self.rate) * fraction)

    def _new_bucket(self) -> TokenBucket | None:
        if self.rate is None:
            return None
        rate, burst = self._shared_rate()
        return TokenBucket(rate, burst, self._clock())

    # -- intake ---------------------------------------------------------------------------

    def bind(self, set_paused: SetPaused) -> None:
        self._set_paused = set_paused

    async def intake(self, records: Iterable[tuple[Task, Ack]]) -> None:
        """Park records taken from the topic; pause partitions that have parked too many."""
        for task, ack in records:
            if task.tp in self._fenced:
                continue  # fetched before its revocation: its next owner reads it again
            part = self._parts.get(task.tp)
            if part is not None and part.entries and task.offset <= part.entries[-1].task.offset:
                log.info(
                    "%s %s: %s[%d] re-read from %d",
                    self.layer,
                    self.subscriber,
                    *task.tp,
                    task.offset,
                )
                self._forget(part)  # the consumer seeked back: start the partition over
                part = None
            if part is None:
                part = self._parts[task.tp] = _Part(task.tp)
            entry = _Entry(task, _lane_of(task, self.default_lane), ack, part)
            part.entries.append(entry)
            part.parked += 1
            self.parked += 1
            if not self.ordered:
                self._lanes[entry.lane].append(entry)
            if part.parked > PARK_HIGH and not part.paused:
                part.paused = True
                await self._pause(part.tp, paused=True)
        self._m_parked.set(self.parked)
        self._wake.set()

    def revoke(self, tps: Iterable[TP]) -> None:
        """Forget revoked partitions: what they parked is uncommitted and re-read elsewhere.
        Records of theirs still in flight to the pump are dropped until they are assigned
        again (:meth:`unfence`), so a late one cannot hide the re-read from the commit."""
        for tp in tps:
            self._fenced.add(tp)
            self._generations[tp] = self.generation(tp) + 1
            revoked = self._revoked.pop(tp, None)
            if revoked is not None:
                revoked.set()
            part = self._parts.pop(tp, None)
            if part is not None:
                self._forget(part)
        self._m_parked.set(self.parked)

    def unfence(self, tps: Iterable[TP]) -> None:
        """Partitions assigned (again): their records are taken from now on."""
        self._fenced.difference_update(tps)

    async def repause(self) -> None:
        """Pause again what this pump paused: a rebalance may have resumed it in the client."""
        for part in list(self._parts.values()):
            if part.paused and part.active:
                await self._pause(part.tp, paused=True)

    def _forget(self, part: _Part) -> None:
        part.active = False  # running tasks finish, but are never acked
        for entry in part.entries:
            if entry.state == "parked":
                entry.state = "dropped"
                self.parked -= 1
        part.entries.clear()
        part.parked = 0
        for lane in LANES:
            self._lanes[lane] = deque(e for e in self._lanes[lane] if e.part.active)

    # -- dispatch -------------------------------------------------------------------------

    async def run(self) -> None:
        """Dispatch forever; re-raises what ``process`` raised (a bug: the worker crashes)."""
        while True:
            self._wake.clear()
            if self._failure is not None:
                raise self._failure
            wait = self._dispatch()
            self._m_rate_limited.set(0 if wait is None else 1)  # only the bucket sets a wait
            self._m_in_flight.set(self.in_flight)
            self._m_limit.set(self.limit)
            self._m_parked.set(self.parked)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _dispatch(self) -> float | None:
        """Start what may start now; the seconds until the rate allows more, or None."""
        while not self._holds and not self._stopped and self.in_flight < self.limit:
            lane = self._picker.next_lane(self._available())
            if lane is None:
                return None
            if self._bucket is not None:
                now = self._clock()
                if not self._bucket.try_acquire(1, now):
                    return max(0.001, self._bucket.delay_until_available(1, now))
            entry = self._take(lane)
            self._start(entry)
        return None

    def _available(self) -> dict[Lane, bool]:
        if not self.ordered:
            for queue in self._lanes.values():
                while queue and queue[0].state != "parked":
                    queue.popleft()
            return {lane: bool(queue) for lane, queue in self._lanes.items()}
        found: dict[Lane, bool] = {}
        for head in self._heads():
            found[head.lane] = True
        return found

    def _heads(self) -> Iterable[_Entry]:
        for part in self._parts.values():
            if part.running == 0 and part.parked:
                yield next(e for e in part.entries if e.state == "parked")

    def _take(self, lane: Lane) -> _Entry:
        if not self.ordered:
            return self._lanes[lane].popleft()
        return next(e for e in self._heads() if e.lane == lane)

    def _start(self, entry: _Entry) -> None:
        entry.state = "running"
        part = entry.part
        part.parked -= 1
        part.running += 1
        self.parked -= 1
        self.in_flight += 1
        self._m_dispatched.inc()
        job = asyncio.create_task(self._run(entry))
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def _run(self, entry: _Entry) -> None:
        finished = False
        try:
            await self._process(entry.task)
            finished = True
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # process() records task failures; this is a bug
            log.critical("%s %s: task processing failed: %r", self.layer, self.subscriber, exc)
            self._failure = exc
        finally:
            self.in_flight -= 1
            # Unfinished (cancelled at shutdown, or a bug): never acked, so neither is anything
            # after it in its partition, and all of it is redelivered.
            entry.state = "done" if finished else "failed"
            entry.part.running -= 1
            self._wake.set()
        if finished:
            await self._settle(entry.part)

    async def _settle(self, part: _Part) -> None:
        """Ack the finished prefix of a partition; resume it when its parked count is low."""
        async with self._acking:
            while part.active and part.entries and part.entries[0].state == "done":
                await part.entries.popleft().ack()
        if not part.active:
            return
        if part.paused and part.parked <= PARK_LOW:
            part.paused = False
            await self._pause(part.tp, paused=False)

    async def _pause(self, tp: TP, *, paused: bool) -> None:
        if self._set_paused is not None:
            await self._set_paused(tp, paused)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Start nothing more; let what runs finish (and be acked) for up to ``grace_s``, then
        cancel the rest (its offsets stay uncommitted: redelivered). The grace is what keeps a
        rolling restart from re-running, on the partitions' next owner, every task that was in
        flight at the SIGTERM (the rebalance-storm chaos scenario counted them)."""
        self._stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if grace_s > 0 and self._running:
            await asyncio.wait(list(self._running), timeout=grace_s)
        self.revoke(list(self._parts))
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


def _lane_of(task: Task, default: Lane) -> Lane:
    value = h.get_str(task.headers, h.PRIORITY)
    return value if value in get_args(Lane) else default  # type: ignore[return-value]
