"""loadtest.sustained: when a step held, and how the search walks the rates (no broker)."""

from __future__ import annotations

import pytest

from loadtest.sustained import Step, find_sustained, held, verdict


def steady(rate: float, capacity: float) -> Step:
    """A system that completes up to ``capacity``/s; beyond it the backlog grows."""
    completed = min(rate, capacity)
    growth = max(0.0, rate - capacity)
    backlog = [(float(t), 50 + growth * t) for t in range(20)]
    return Step(rate, completed, backlog, backlog_floor=rate * 2.5)


def test_a_step_that_keeps_up_holds() -> None:
    assert held(Step(1000, 990, [(0, 100), (1, 120), (2, 90), (3, 110)]))


def test_completing_less_than_95_percent_fails() -> None:
    why = verdict(Step(1000, 940))
    assert why is not None
    assert "94%" in why


def test_a_growing_backlog_fails_even_when_completions_look_fine() -> None:
    backlog = [(float(t), 1000.0 + 200 * t) for t in range(10)]
    why = verdict(Step(1000, 980, backlog))
    assert why is not None
    assert "backlog growing" in why


def test_growth_below_the_floor_is_batching_not_a_backlog() -> None:
    backlog = [(float(t), 10.0 + 100 * t) for t in range(5)]  # ends at 410
    assert held(Step(1000, 1000, backlog, backlog_floor=2500))
    assert not held(Step(1000, 1000, backlog, backlog_floor=100))


def test_search_steps_up_then_bisects_below_capacity() -> None:
    tried: list[float] = []

    def measure(rate: float) -> Step:
        tried.append(rate)
        return steady(rate, capacity=1000)

    search = find_sustained(measure, start=200, factor=1.5, bisect=2)
    assert tried[:6] == pytest.approx([200, 300, 450, 675, 1012.5, 1518.75])
    assert len(tried) == 8  # six steps, two bisections
    assert search.sustained is not None
    # 95 % completion is "keeping up": up to capacity / 0.95 holds.
    assert 1012.5 <= search.sustained <= 1000 / 0.95
    assert "held" in search.describe()
    assert "of target" in search.describe()


def test_search_steps_down_when_the_start_rate_fails() -> None:
    search = find_sustained(lambda r: steady(r, capacity=100), start=400, factor=2, bisect=0)
    assert [s.rate for s in search.steps] == [400, 200, 100]
    assert search.sustained == 100


def test_search_reports_none_when_nothing_holds() -> None:
    search = find_sustained(lambda r: Step(r, 0.0), start=10, factor=2, floor=1.0)
    assert search.sustained is None
    assert [s.rate for s in search.steps] == [10, 5, 2.5, 1.25]


def test_max_steps_bounds_a_smoke_run() -> None:
    done: list[tuple[int, int]] = []
    search = find_sustained(
        lambda r: steady(r, capacity=1e9),
        start=100,
        max_steps=2,
        bisect=0,
        progress=lambda d, p: done.append((d, p)),
    )
    assert [s.rate for s in search.steps] == [100, 150]
    assert search.sustained == 150
    assert done == [(1, 2), (2, 2)]
