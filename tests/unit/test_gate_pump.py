"""The gate's dispatch rules, driven without Kafka: records in, process() calls and acks out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pipeline import headers as h
from pipeline.gate.pump import PARK_HIGH, PARK_LOW, Pump, Task


def _task(partition: int, offset: int, priority: str | None = None) -> Task:
    headers = {} if priority is None else {h.PRIORITY: priority.encode()}
    return Task(("t", partition), offset, b"k", b"v", headers, list(headers.items()), 0)


class Recorder:
    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.running = 0
        self.peak = 0
        self.started: list[tuple[int, int]] = []
        self.acked: list[tuple[int, int]] = []
        self.gate = gate

    async def process(self, task: Task) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.started.append((task.tp[1], task.offset))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0.001 * (task.offset % 3))
        self.running -= 1

    def ack(self, task: Task) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            self.acked.append((task.tp[1], task.offset))

        return ack


async def _drain(pump: Pump, rec: Recorder, expected: int) -> None:
    runner = asyncio.create_task(pump.run())
    try:
        for _ in range(2000):
            if len(rec.acked) >= expected:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"only {len(rec.acked)} of {expected} acked")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_in_flight_never_exceeds_the_limit_and_acks_follow_offset_order() -> None:
    rec = Recorder()
    pump = Pump("delivery", "s", rec.process, max_in_flight=3, partitions=1)
    tasks = [_task(0, i) for i in range(40)]
    await pump.intake((t, rec.ack(t)) for t in tasks)
    await _drain(pump, rec, 40)
    assert rec.peak == 3
    assert rec.acked == [(0, i) for i in range(40)]


async def test_the_limit_is_this_workers_share_of_partitions_and_further_caps() -> None:
    pump = Pump("delivery", "s", Recorder().process, max_in_flight=100, partitions=4)
    pump.set_owned(1)
    assert pump.limit == 25
    pump.concurrency = 8
    assert pump.limit == 8
    pump.adaptive = 3
    assert pump.limit == 3
    pump.set_owned(0)
    pump.concurrency = pump.adaptive = None
    assert pump.limit == 1  # never zero: a worker that owns nothing still drains what it holds


async def test_ordered_runs_one_task_per_partition_in_offset_order() -> None:
    rec = Recorder()
    pump = Pump("delivery", "s", rec.process, max_in_flight=10, partitions=2, ordered=True)
    tasks = [_task(p, i) for i in range(10) for p in (0, 1)]
    await pump.intake((t, rec.ack(t)) for t in tasks)
    await _drain(pump, rec, 20)
    assert rec.peak <= 2
    for p in (0, 1):
        assert [o for part, o in rec.started if part == p] == list(range(10))


async def test_high_priority_goes_first_and_nothing_moves_while_held() -> None:
    rec = Recorder()
    pump = Pump("delivery", "s", rec.process, max_in_flight=1, partitions=1)
    pump.hold("test")
    lows = [_task(0, i, "low") for i in range(5)]
    highs = [_task(0, i, "high") for i in range(5, 8)]
    await pump.intake((t, rec.ack(t)) for t in [*lows, *highs])
    runner = asyncio.create_task(pump.run())
    await asyncio.sleep(0.05)
    assert rec.started == []
    pump.release("test")
    runner.cancel()
    await _drain(pump, rec, 8)
    assert [o for _, o in rec.started[:3]] == [5, 6, 7]
    assert rec.acked == [(0, i) for i in range(8)]


async def test_a_partition_with_too_much_parked_is_paused_then_resumed() -> None:
    gate = asyncio.Event()
    rec = Recorder(gate)
    calls: list[tuple[int, bool]] = []

    async def set_paused(tp: tuple[str, int], paused: bool) -> None:
        calls.append((tp[1], paused))

    pump = Pump("delivery", "s", rec.process, max_in_flight=1000, partitions=1)
    pump.bind(set_paused)
    tasks = [_task(0, i) for i in range(PARK_HIGH + 10)]
    await pump.intake((t, rec.ack(t)) for t in tasks)
    assert calls == [(0, True)]
    gate.set()
    await _drain(pump, rec, len(tasks))
    assert calls == [(0, True), (0, False)]
    assert PARK_LOW < PARK_HIGH


async def test_revoked_partitions_are_forgotten_and_never_acked() -> None:
    gate = asyncio.Event()
    rec = Recorder(gate)
    pump = Pump("delivery", "s", rec.process, max_in_flight=1, partitions=2)
    tasks = [_task(p, i) for p in (0, 1) for i in range(3)]
    await pump.intake((t, rec.ack(t)) for t in tasks)
    runner = asyncio.create_task(pump.run())
    await asyncio.sleep(0.01)
    pump.revoke([("t", 0)])
    gate.set()
    runner.cancel()
    await _drain(pump, rec, 3)
    assert all(p == 1 for p, _ in rec.acked)
    assert pump.parked == 0


async def test_a_bug_in_process_crashes_the_dispatch_loop() -> None:
    async def broken(task: Task) -> None:
        raise RuntimeError("bug")

    pump = Pump("delivery", "s", broken, max_in_flight=1, partitions=1)

    async def ack() -> None:
        return None

    await pump.intake([(_task(0, 0), ack)])
    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(pump.run(), 5)


def _acker(acked: list[int], offset: int) -> Callable[[], Awaitable[None]]:
    async def ack() -> None:
        acked.append(offset)

    return ack


async def test_records_fetched_before_a_revocation_cannot_hide_the_re_read() -> None:
    started: list[int] = []
    acked: list[int] = []

    async def process(task: Task) -> None:
        started.append(task.offset)

    pump = Pump("delivery", "s", process, max_in_flight=10, partitions=1)
    pump.hold("test")
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(10))
    pump.revoke([("t", 0)])
    # the rest of the stream's buffer, fetched in the old generation, arrives late ...
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(10, 13))
    # ... then the partition is assigned again and re-read from the committed offset 0
    pump.unfence([("t", 0)])
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(15))
    pump.release("test")
    runner = asyncio.create_task(pump.run())
    for _ in range(1000):
        if len(acked) == 15:
            break
        await asyncio.sleep(0.001)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert sorted(started) == list(range(15))
    assert acked == list(range(15))


async def test_a_seek_back_starts_the_partition_over() -> None:
    rec = Recorder()
    pump = Pump("delivery", "s", rec.process, max_in_flight=10, partitions=1)
    pump.hold("test")
    first = [_task(0, o) for o in range(5, 8)]
    await pump.intake((t, rec.ack(t)) for t in first)
    again = [_task(0, o) for o in range(2, 8)]
    await pump.intake((t, rec.ack(t)) for t in again)
    pump.release("test")
    await _drain(pump, rec, 6)
    assert rec.acked == [(0, o) for o in range(2, 8)]


async def test_after_stop_nothing_starts_and_unfinished_work_is_never_acked() -> None:
    started: list[int] = []
    acked: list[int] = []
    never = asyncio.Event()

    async def process(task: Task) -> None:
        started.append(task.offset)
        if task.offset == 0:
            await never.wait()  # still running at shutdown: cancelled by stop()

    pump = Pump("execution", "s", process, max_in_flight=2, partitions=1)
    runner = asyncio.create_task(pump.run())
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(6))
    await asyncio.sleep(0.02)
    before = list(started)
    await pump.stop()
    await asyncio.sleep(0.02)  # faust cancels the dispatch loop only later
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert started == before
    assert acked == []  # offset 0 never finished: nothing after it may be committed


async def test_an_in_place_retry_waits_out_a_hold_and_stops_on_revocation() -> None:
    pump = Pump("delivery", "s", Recorder().process, max_in_flight=1, partitions=1)
    tp = ("t", 0)
    assert await pump.wait_to_retry(tp, 0.001)
    pump.hold("unhealthy")
    waiting = asyncio.create_task(pump.wait_to_retry(tp, 0.001))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # held: an ordered retry does not burn its attempts
    pump.release("unhealthy")
    assert await asyncio.wait_for(waiting, 1)
    revoked = asyncio.create_task(pump.wait_to_retry(tp, 60))
    await asyncio.sleep(0.01)
    pump.revoke([tp])
    assert not await asyncio.wait_for(revoked, 1)  # its new owner has the task


async def test_a_timed_hold_releases_itself_and_only_a_later_one_extends_it() -> None:
    rec = Recorder()
    pump = Pump("delivery", "s", rec.process, max_in_flight=4, partitions=1)
    assert pump.hold_for("retry-after", 0.05)
    assert not pump.hold_for("retry-after", 0.01)  # ends sooner: the longer hold stands
    assert not pump.hold_for("retry-after", 0.1)  # ends later: extended, but not new
    tasks = [_task(0, i) for i in range(3)]
    await pump.intake((t, rec.ack(t)) for t in tasks)
    draining = asyncio.create_task(_drain(pump, rec, 3))
    await asyncio.sleep(0.07)
    assert pump.held
    assert rec.started == []  # the 0.1 s hold still stands
    await draining
    assert not pump.held


async def test_releasing_a_timed_hold_early_cancels_its_timer() -> None:
    pump = Pump("delivery", "s", Recorder().process, max_in_flight=1, partitions=1)
    pump.hold_for("retry-after", 0.01)
    pump.release("retry-after")
    pump.hold("retry-after")  # the same reason held again, now without an end
    await asyncio.sleep(0.03)
    assert pump.held  # the first hold's timer did not release the second
    await pump.stop()


async def test_a_stop_with_grace_lets_running_tasks_finish_and_be_acked_starts_nothing() -> None:
    started: list[int] = []
    acked: list[int] = []
    slow = asyncio.Event()

    async def process(task: Task) -> None:
        started.append(task.offset)
        if task.offset < 2:
            await slow.wait()  # in flight at the SIGTERM, finishing soon after

    pump = Pump("execution", "s", process, max_in_flight=2, partitions=1)
    runner = asyncio.create_task(pump.run())
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(6))
    await asyncio.sleep(0.02)
    assert started == [0, 1]
    asyncio.get_running_loop().call_later(0.05, slow.set)
    await pump.stop(grace_s=2.0)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert started == [0, 1]  # nothing new started during the grace
    assert acked == [0, 1]  # the two in flight finished and were acked: not re-run elsewhere


async def test_the_grace_is_bounded_what_outlasts_it_is_cancelled_and_never_acked() -> None:
    acked: list[int] = []
    never = asyncio.Event()
    cancelled: list[int] = []

    async def process(task: Task) -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(task.offset)
            raise

    pump = Pump("execution", "s", process, max_in_flight=1, partitions=1)
    runner = asyncio.create_task(pump.run())
    await pump.intake((_task(0, o), _acker(acked, o)) for o in range(2))
    await asyncio.sleep(0.02)
    await pump.stop(grace_s=0.05)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert cancelled == [0]
    assert acked == []
