"""Concurrency autoscaling: up one per tick while saturated with a backlog, down when idle."""

from __future__ import annotations

import pytest

from pipeline.agents.execution_scale import IDLE_S, Autoscaler
from pipeline.errors import MSMError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_starts_at_min_and_grows_while_saturated_with_a_backlog() -> None:
    clock = Clock()
    scaler = Autoscaler(2, 5, clock)
    assert scaler.limit == 2
    seen = []
    for _ in range(6):
        clock.now += 1
        seen.append(scaler.tick(backlog=50, in_flight=scaler.limit))
    assert seen == [3, 4, 5, 5, 5, 5]


def test_no_growth_without_backlog_or_with_free_slots() -> None:
    clock = Clock()
    scaler = Autoscaler(1, 8, clock)
    clock.now += 1
    assert scaler.tick(backlog=0, in_flight=1) == 1  # busy, but nothing waits
    clock.now += 1
    assert scaler.tick(backlog=10, in_flight=0) == 1  # waiting on another cap (rate, ordered)


def test_shrinks_one_step_per_idle_period_down_to_min() -> None:
    clock = Clock()
    scaler = Autoscaler(1, 4, clock)
    for _ in range(3):
        clock.now += 1
        scaler.tick(backlog=5, in_flight=scaler.limit)
    assert scaler.limit == 4
    limits = []
    for _ in range(int(4 * IDLE_S) + 5):
        clock.now += 1
        limits.append(scaler.tick(backlog=0, in_flight=0))
    assert limits[int(IDLE_S) - 2] == 4  # not before a whole idle period
    assert limits[int(IDLE_S) - 1] == 3
    assert limits[-1] == 1
    assert sorted(set(limits)) == [1, 2, 3, 4]


def test_a_backlog_restarts_the_idle_period() -> None:
    clock = Clock()
    scaler = Autoscaler(1, 4, clock)
    clock.now += 1
    scaler.tick(backlog=5, in_flight=1)
    for _ in range(int(IDLE_S) - 1):
        clock.now += 1
        scaler.tick(backlog=0, in_flight=0)
    clock.now += 1
    scaler.tick(backlog=1, in_flight=0)
    for _ in range(int(IDLE_S) - 1):
        clock.now += 1
        assert scaler.tick(backlog=0, in_flight=0) == 2


@pytest.mark.parametrize(("lo", "hi"), [(0, 4), (5, 4)])
def test_bad_bounds(lo: int, hi: int) -> None:
    with pytest.raises(MSMError):
        Autoscaler(lo, hi, Clock())
