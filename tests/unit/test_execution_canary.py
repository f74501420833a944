"""Canary: a stable share of tasks by task id, and a rollback when it errs more than stable."""

from __future__ import annotations

import pytest

from pipeline.agents.execution_canary import MIN_SAMPLES, Canary, bucket
from pipeline.topology.subscribers import CanarySpec


def test_the_choice_is_a_function_of_the_task_id() -> None:
    a, b = Canary(30, 0.05), Canary(30, 0.05)
    ids = [f"e{i}/s" for i in range(200)]
    assert [a.choose(t) for t in ids] == [b.choose(t) for t in ids]
    assert all(0 <= bucket(t) < 10_000 for t in ids)
    assert bucket("x/s") == bucket("x/s")


@pytest.mark.parametrize("percent", [0, 5, 10, 50, 100])
def test_the_canary_gets_about_its_percent(percent: float) -> None:
    canary = Canary(percent, 0.05)
    n = 20_000
    share = sum(canary.choose(f"event-{i}/sub") == "canary" for i in range(n)) / n
    assert share == pytest.approx(percent / 100, abs=0.015)
    if percent in (0, 100):
        assert share == percent / 100


def test_no_verdict_before_enough_canary_samples() -> None:
    canary = Canary(10, 0.05)
    for _ in range(MIN_SAMPLES - 1):
        assert not canary.record("canary", ok=False)
    assert canary.percent == 10
    assert canary.record("canary", ok=False)  # the 20th failure rolls it back
    assert canary.percent == 0
    assert canary.rolled_back
    assert all(canary.choose(f"t{i}") == "stable" for i in range(1000))


def test_rollback_is_reported_once() -> None:
    canary = Canary(50, 0.0)
    verdicts = [canary.record("canary", ok=False) for _ in range(3 * MIN_SAMPLES)]
    assert verdicts.count(True) == 1


def test_compared_with_the_stable_error_rate() -> None:
    canary = Canary(50, 0.10)
    for i in range(100):
        canary.record("stable", ok=i % 5 != 0)  # stable fails 20 %
    for i in range(MIN_SAMPLES * 2):
        assert not canary.record("canary", ok=i % 4 != 0)  # canary 25 %: within 10 points
    assert canary.percent == 50
    for _ in range(30):
        canary.record("canary", ok=False)
    assert canary.rolled_back  # now far worse than stable


def test_a_healthy_canary_stays() -> None:
    canary = Canary(10, 0.05)
    for _ in range(500):
        canary.record("canary", ok=True)
        canary.record("stable", ok=False)
    assert canary.percent == 10
    assert not canary.rolled_back


def test_the_window_forgets_old_results() -> None:
    canary = Canary(10, 0.05, window=40)
    for _ in range(40):
        canary.record("canary", ok=False)  # rolled back meanwhile; the window still slides
    for _ in range(40):
        canary.record("canary", ok=True)
    assert canary.error_rate("canary") == 0.0


def test_from_spec() -> None:
    canary = Canary.from_spec(CanarySpec(handler="m:f", percent=25, error_rate_threshold=0.2))
    assert (canary.percent, canary.threshold) == (25, 0.2)
