"""Backoff: handler results to the gate's adaptive limit (fake gate and clock, no Kafka)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

import pytest

from pipeline.agents.execution_backoff import Backoff, signal_for
from pipeline.agents.execution_handlers import HandlerExit, HandlerTimeout
from pipeline.gate.capacity import Signal
from pipeline.handler import DeadLetter, Retry, TaskMeta
from tests.unit.test_execution_task import Rig, task


class Gate:
    """A gate owning ``owned`` of ``partitions`` partitions, as Pump.share computes it."""

    def __init__(self, owned: int = 4, partitions: int = 4) -> None:
        self.owned, self.partitions = owned, partitions
        self.adaptive: int | None = None

    def share(self, value: int) -> int:
        return max(1, value * self.owned // self.partitions)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def backoff(gate: Gate, max_in_flight: int = 8, ceiling: int = 100) -> tuple[Backoff, Clock]:
    clock = Clock()
    return Backoff("sub", max_in_flight, ceiling, gate, clock=clock), clock


@pytest.mark.parametrize(
    ("failure", "signal"),
    [
        (None, Signal.SUCCESS),
        (HandlerTimeout("no result within 1s"), Signal.TIMEOUT),
        (Retry(), Signal.THROTTLED),
        (Retry(delay=timedelta(seconds=5)), Signal.THROTTLED),
        (RuntimeError("boom"), Signal.ERROR),
        (DeadLetter(), Signal.ERROR),
        (HandlerExit("exit"), Signal.ERROR),
    ],
)
def test_signal_for(failure: BaseException | None, signal: Signal) -> None:
    assert signal_for(failure) is signal


def test_trouble_halves_once_per_cooldown_and_successes_climb_back() -> None:
    gate = Gate()
    b, clock = backoff(gate)
    assert b.record(Signal.SUCCESS) == 8
    assert gate.adaptive == 8
    assert b.record(Signal.TIMEOUT) == 4
    assert b.record(Signal.TIMEOUT) == 4, "one outage, one halving per cooldown"
    clock.now += 1.0
    assert b.record(Signal.THROTTLED) == 2
    assert gate.adaptive == 2
    clock.now += 11  # past the error window
    limits = [b.record(Signal.SUCCESS) for _ in range(2 + 3 + 4 + 5 + 6 + 7)]
    assert limits[-1] == 8
    assert limits == sorted(limits), "climbs one step per window of successes"
    assert gate.adaptive == 8


def test_plain_errors_back_off_only_above_the_error_rate() -> None:
    gate = Gate()
    b, _ = backoff(gate)
    for _ in range(19):
        b.record(Signal.ERROR)
    assert gate.adaptive == 8, "too few samples to judge"
    b.record(Signal.ERROR)
    assert gate.adaptive == 4


def test_the_top_is_the_share_of_max_in_flight_capped_by_concurrency_max() -> None:
    gate = Gate(owned=2, partitions=4)
    assert backoff(gate, max_in_flight=8)[0].aimd.max_limit == 4
    assert backoff(gate, max_in_flight=100, ceiling=3)[0].aimd.max_limit == 3
    assert backoff(Gate(owned=0), max_in_flight=8)[0].aimd.max_limit == 1


def test_a_limit_at_its_top_follows_the_share() -> None:
    gate = Gate(owned=4)
    b, _ = backoff(gate)
    gate.owned = 2  # a rebalance took half the partitions
    assert b.record(Signal.SUCCESS) == 4
    gate.owned = 4
    assert b.record(Signal.SUCCESS) == 8, "healthy: back to the whole share at once"


def test_a_backed_off_limit_is_clamped_but_not_raised_by_the_share() -> None:
    gate = Gate(owned=4)
    b, clock = backoff(gate, max_in_flight=16)
    b.record(Signal.TIMEOUT)  # 16 -> 8
    gate.owned = 1
    assert b.record(Signal.SUCCESS) == 4, "clamped to the new share"
    clock.now += 1
    assert b.record(Signal.TIMEOUT) == 2
    gate.owned = 4
    assert b.record(Signal.SUCCESS) == 2, "still in trouble: it climbs back by successes"
    assert b.aimd.max_limit == 16


def test_logs_one_line_when_backing_off_and_one_when_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.agents.execution_backoff")
    b, clock = backoff(Gate())
    b.record(Signal.TIMEOUT)  # 8 -> 4: half, not below
    assert caplog.messages == []
    for _ in range(3):
        clock.now += 1
        b.record(Signal.TIMEOUT)  # 2, then 1, then 1
    clock.now += 11
    for _ in range(40):
        b.record(Signal.SUCCESS)
    clock.now += 1
    b.record(Signal.TIMEOUT)  # 8 -> 4 again: not below half
    assert caplog.messages == [
        "execution sub: backing off to 2 handler run(s) at once, of 8 (timeout; error rate 100%)",
        "execution sub: recovered, back to 8 handler run(s) at once",
    ]
    assert not b.backed_off


async def test_the_executor_feeds_each_run_to_its_backoff() -> None:
    outcomes = iter([None, Retry(1.0), None])

    async def handler(payload: Mapping[str, object], meta: TaskMeta) -> None:
        failure = next(outcomes)
        if failure is not None:
            raise failure

    rig = Rig({"stable": handler})
    gate = Gate()
    rig.executor.backoff, _ = backoff(gate)
    await rig.executor.process(task("e1"))
    assert gate.adaptive == 8
    await rig.executor.process(task("e2"))
    assert gate.adaptive == 4, "a Retry is the handler's 429"
    await rig.executor.process(task("e2"))  # redelivered: runs again (it failed)
    await rig.executor.process(task("e1"))  # done before: skipped, no run, no signal
    assert gate.adaptive == 4
    assert rig.executor.backoff.aimd.error_rate == pytest.approx(1 / 3)


async def test_a_handler_timeout_backs_off() -> None:
    async def hangs(payload: Mapping[str, object], meta: TaskMeta) -> None:
        await asyncio.sleep(5)

    rig = Rig({"stable": hangs}, timeout_s=0.02)
    gate = Gate()
    rig.executor.backoff, _ = backoff(gate)
    await rig.executor.process(task())
    assert gate.adaptive == 4
