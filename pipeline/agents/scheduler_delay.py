"""The scheduler's delay engine: route each record now, park it, or hold it until due.

Plain asyncio around the pure rules of :mod:`pipeline.agents.scheduling`, so it is tested
without a broker; :mod:`pipeline.agents.scheduler` wires it to faust.

* ``accepted`` records are routed at once: ready, a delay tier (stamped :data:`TIERED_AT` =
  now), or held in memory when due within :data:`HOLD_WINDOW_MS`.
* A delay-tier record is due at ``max(record timestamp, tiered_at) + tier`` (capped at its
  deliver_at). Until then it is *parked* in the same due queue, then routed again. Parking a
  record due more than :data:`PREFETCH_MS` ahead pauses its partition in the Kafka client, so
  only what was already fetched is read ahead, never the backlog: memory does not grow with
  the number of pending events. The partition resumes PREFETCH_MS before its last parked
  record falls due.
* A record carrying :data:`~pipeline.headers.TARGET` (a retry, written by delivery) travels the
  tiers like any other, target kept, and when due goes to that topic (a subscriber's queue,
  partition by key) instead of ready, without the target and tiered_at headers. Only
  ``<ns>.sub.<subscriber>`` topics of the topology are targets. A retry for a subscriber the
  topology no longer has (removed, or a deploy still rolling) goes to ``<ns>.rejected`` with
  reason ``unknown_target`` when due, never to ready, where it would fan out to everyone.
* Offsets are acked to faust strictly in order per partition, once everything below them is
  forwarded and the produce acknowledged (:class:`~pipeline.agents.scheduling.CommitTracker`).
  Faust's own commit logic must never see an unacked gap: ``Consumer._new_offset`` skips its
  gap check while nothing was committed (``if committed_offset:``) and, with a commit at C,
  still commits past an unacked C once C+1 is acked (``min(acked) - C > 1``).

State is per *lane* (a partition between two rebalances); revoking drops it and late results
for a dropped lane are ignored: the partition's next owner re-reads from the committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from pipeline import headers as h
from pipeline.agents.base import Send
from pipeline.agents.scheduler_records import TIERED_AT, TP, Ack, Incoming
from pipeline.agents.scheduling import (
    READY,
    CommitTracker,
    DueQueue,
    Hold,
    OffsetOrderError,
    Ready,
    due_ms,
    route,
    tiers_ms,
)
from pipeline.topology.topics import TopicNames

log = logging.getLogger(__name__)

HOLD_WINDOW_MS = 1000
PREFETCH_MS = 1000
_MAX_REFUSED_LOGGED = 100  # distinct unknown targets warned about, each once


@dataclass(eq=False)
class _Lane:
    tp: TP
    acks: deque[tuple[int, Ack]] = field(default_factory=deque)
    parked: int = 0  # tier records waiting in the queue for their tier's due time
    parked_until: int = 0  # the latest due time among them
    paused: bool = False
    active: bool = True


@dataclass(eq=False, slots=True)
class _Held:
    lane: _Lane
    offset: int
    key: bytes | None
    value: bytes
    headers: h.HeaderList
    deliver_at: int | None
    target: str | None = None  # the topic to forward to when due, instead of ready
    parked: bool = False


class DelayRouter:
    """Routes records of ``accepted`` and the delay tiers; one per scheduler app."""

    def __init__(
        self,
        names: TopicNames,
        tiers: Iterable[timedelta],
        send: Send,
        *,
        clock_ms: Callable[[], int],
        pause: Callable[[TP], Awaitable[None]],
        resume: Callable[[TP], Awaitable[None]],
        on_ready: Callable[[int], None] | None = None,
        on_forward: Callable[[h.HeaderList], None] | None = None,
        targets: Collection[str] = (),
        hold_window_ms: int = HOLD_WINDOW_MS,
        prefetch_ms: int = PREFETCH_MS,
    ) -> None:
        self._tiers = tiers_ms(tiers)
        self._tier_topics = {t: names.delay(timedelta(milliseconds=t)) for t in self._tiers}
        self._ready, self._rejected = names.ready, names.rejected
        self._targets = frozenset(targets)
        self._refused: set[str] = set()
        self._send = send
        self._clock = clock_ms
        self._pause, self._resume = pause, resume
        self._on_ready = on_ready or _log_lateness
        self._on_forward = on_forward  # each record sent on when due (its headers): metrics
        self._hold_ms, self._prefetch_ms = hold_window_ms, prefetch_ms
        self._queue: DueQueue[_Held] = DueQueue()
        self._tracker: CommitTracker[_Lane] = CommitTracker()
        self._lanes: dict[TP, _Lane] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        """Records in memory: held until deliver_at or parked until their tier is due."""
        return len(self._queue)

    async def intake(self, records: Sequence[Incoming], tier_ms: int | None = None) -> None:
        """Route a batch consumed from ``accepted`` (``tier_ms`` None) or a delay tier."""
        now = self._clock()
        sends: list[Awaitable[object]] = []
        done: list[_Held] = []
        for rec in records:
            lane = self._take(rec.tp, rec.offset)
            lane.acks.append((rec.offset, rec.ack))
            named = h.to_dict(rec.headers)
            deliver_at = h.get_int(named, h.DELIVER_AT)
            target, headers = self._target(named, rec.headers)
            held = _Held(lane, rec.offset, rec.key, rec.value, headers, deliver_at, target)
            if tier_ms is not None:
                enqueued = max(rec.timestamp_ms, h.get_int(named, TIERED_AT) or 0)
                due = due_ms(enqueued, tier_ms, held.deliver_at)
                if due > now:
                    await self._park(held, due, now)
                    continue
            await self._dispatch(held, now, sends, done)
        await self._finish(sends, done)

    async def release_due(self) -> None:
        """Forward or re-route what is due; resume partitions whose parked records near due."""
        now = self._clock()
        sends: list[Awaitable[object]] = []
        done: list[_Held] = []
        for held in self._queue.pop_due(now):
            if held.parked:
                held.parked = False
                held.lane.parked -= 1
            await self._dispatch(held, now, sends, done)
        for lane in list(self._lanes.values()):
            if not (lane.active and lane.paused):
                continue
            if lane.parked <= 0 or lane.parked_until - self._prefetch_ms <= now:
                lane.paused = False
                await self._resume(lane.tp)
        await self._finish(sends, done)

    def wake_at(self) -> int | None:
        """When :meth:`release_due` has work next (ms), None when nothing waits."""
        times = [
            lane.parked_until - self._prefetch_ms for lane in self._lanes.values() if lane.paused
        ]
        queued = self._queue.next_due_ms()
        if queued is not None:
            times.append(queued)
        return min(times, default=None)

    async def run(self) -> None:
        """Release due records forever, sleeping until the next due time or new work."""
        while True:
            self._wake.clear()
            await self.release_due()
            when = self.wake_at()
            timeout = None if when is None else max(0, when - self._clock()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def revoke(self, tps: Iterable[TP]) -> None:
        """Forget revoked partitions: what they held is uncommitted and will be re-read."""
        for tp in tps:
            lane = self._lanes.pop(tp, None)
            if lane is not None:
                self._drop(lane)

    def _take(self, tp: TP, offset: int) -> _Lane:
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = _Lane(tp)
        try:
            self._tracker.take(lane, offset)
        except OffsetOrderError:  # the consumer seeked back (a rebalance): start the lane over
            log.info("scheduler: %s[%d] re-read from %d", tp[0], tp[1], offset)
            self._drop(lane)
            lane = self._lanes[tp] = _Lane(tp)
            self._tracker.take(lane, offset)
        return lane

    def _drop(self, lane: _Lane) -> None:
        lane.active = False
        self._tracker.forget(lane)
        self._queue.discard(lambda held: held.lane is lane)

    async def _park(self, held: _Held, due: int, now: int) -> None:
        lane = held.lane
        if not lane.active:  # revoked while this batch was being routed
            return
        held.parked = True
        lane.parked += 1
        lane.parked_until = max(lane.parked_until, due)
        self._queue.push(due, held)
        self._wake.set()
        if due - now > self._prefetch_ms and not lane.paused:
            lane.paused = True
            log.debug("scheduler: pausing %s[%d] at %d parked", *lane.tp, lane.parked)
            await self._pause(lane.tp)

    async def _dispatch(
        self, held: _Held, now: int, sends: list[Awaitable[object]], done: list[_Held]
    ) -> None:
        if not held.lane.active:  # revoked meanwhile: the new owner re-reads it
            return
        at, part = held.deliver_at, held.lane.tp[1]  # same partition, every hop
        where = READY if at is None else route(at, now, self._tiers, self._hold_ms)
        if isinstance(where, Ready):
            if held.target is None:
                out = await self._send(self._ready, held.key, held.value, _untiered(held), part)
            elif held.target in self._targets:  # a retry: to its subscriber's queue, by key
                headers = [(k, v) for k, v in _untiered(held) if k != h.TARGET]
                out = await self._send(held.target, held.key, held.value, headers, None)
            else:  # kept whole, with the reason, so it can be replayed once the target exists
                reason = [
                    (h.REJECT_REASON, b"unknown_target"),
                    (h.REJECT_MESSAGE, f"{held.target} is not a subscriber queue".encode()),
                ]
                headers = [*held.headers, *reason]
                out = await self._send(self._rejected, held.key, held.value, headers, None)
            sends.append(out)
            if at is not None:
                self._on_ready(now - at)
            if self._on_forward is not None:
                self._on_forward(held.headers)
        elif isinstance(where, Hold):
            assert at is not None
            self._queue.push(at, held)
            self._wake.set()
            return
        else:
            headers = [*_untiered(held), (TIERED_AT, str(now).encode())]
            topic = self._tier_topics[where.tier_ms]
            sends.append(await self._send(topic, held.key, held.value, headers, part))
        done.append(held)

    def _target(
        self, named: dict[str, bytes], headers: h.HeaderList
    ) -> tuple[str | None, h.HeaderList]:
        """The record's target and headers; an unknown target is logged (once per value)."""
        target = h.get_str(named, h.TARGET)
        if target is None or target in self._targets:
            return target, headers
        if target not in self._refused and len(self._refused) < _MAX_REFUSED_LOGGED:
            self._refused.add(target)
            log.warning(
                "scheduler: %s is not a subscriber queue of this topology: its retries go to "
                "%s (event %s)",
                target,
                self._rejected,
                h.get_str(named, h.EVENT_ID),
            )
        return target, headers

    async def _finish(self, sends: list[Awaitable[object]], done: list[_Held]) -> None:
        """Wait for the produces, then ack every offset below each lane's commit position."""
        if not done:
            return
        await asyncio.gather(*sends)
        lanes = {held.lane for held in done if self._tracker.complete(held.lane, held.offset)}
        for lane in lanes:
            position = self._tracker.committable(lane)
            if position is None or not lane.active:
                continue
            acks = []
            while lane.acks and lane.acks[0][0] < position:
                acks.append(lane.acks.popleft()[1])
            for ack in acks:
                await ack()


def _untiered(held: _Held) -> h.HeaderList:
    return [(k, v) for k, v in held.headers if k != TIERED_AT]


def _log_lateness(lateness_ms: int) -> None:
    log.debug("scheduler: ready %d ms after deliver_at", lateness_ms)
