"""Delay tier routing: never early, never past deliver_at on a tier, few hops."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.agents.scheduling import (
    HOLD,
    READY,
    InvalidTiersError,
    Tier,
    due_ms,
    route,
    tiers_ms,
)
from pipeline.errors import ConfigError
from pipeline.topology.models import DEFAULT_DELAY_TIERS

DEFAULT_MS = tiers_ms(DEFAULT_DELAY_TIERS)
SECOND, DAY = 1000, 86_400_000
YEAR = 365 * DAY
NOW = 1_700_000_000_000


def test_default_tiers_in_ms() -> None:
    assert DEFAULT_MS == (1000, 5000, 30_000, 120_000, 600_000, 3_600_000, 21_600_000, DAY)


def test_tiers_are_sorted_and_deduplicated() -> None:
    tiers = [timedelta(minutes=1), timedelta(seconds=1), timedelta(minutes=1)]
    assert tiers_ms(tiers) == (1000, 60_000)


@pytest.mark.parametrize(
    "tiers",
    [[], [timedelta(0)], [timedelta(seconds=-1)], [timedelta(microseconds=1500)]],
)
def test_unusable_tiers_are_a_config_error(tiers: list[timedelta]) -> None:
    with pytest.raises(InvalidTiersError) as info:
        tiers_ms(tiers)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (-5, READY),
        (0, READY),
        (1, HOLD),
        (2000, HOLD),  # the hold window is inclusive
        (2001, Tier(1000)),
        (4999, Tier(1000)),
        (5000, Tier(5000)),  # a tier equal to the remaining delay fits exactly
        (29_999, Tier(5000)),
        (DAY - 1, Tier(21_600_000)),
        (YEAR, Tier(DAY)),
    ],
)
def test_route_examples(remaining: int, expected: object) -> None:
    assert route(NOW + remaining, NOW, DEFAULT_MS, 2000) == expected


def test_remaining_below_the_smallest_tier_is_held_even_above_the_hold_window() -> None:
    assert route(NOW + 4000, NOW, (5000, 30_000), 1000) == HOLD
    assert route(NOW + 5000, NOW, (5000, 30_000), 1000) == Tier(5000)


tier_sets = st.lists(st.integers(1, 2 * DAY), min_size=1, max_size=10, unique=True).map(
    lambda xs: tuple(sorted(xs))
)


@given(
    remaining=st.integers(-YEAR, YEAR),
    tiers=tier_sets,
    hold=st.integers(0, 10_000),
)
def test_route_picks_the_largest_tier_that_fits(
    remaining: int, tiers: tuple[int, ...], hold: int
) -> None:
    r = route(NOW + remaining, NOW, tiers, hold)
    if remaining <= 0:
        assert r == READY
    elif r == HOLD:
        assert remaining <= hold or remaining < tiers[0]
    else:
        assert isinstance(r, Tier)
        assert r.tier_ms in tiers
        assert remaining > hold
        assert r.tier_ms <= remaining, "a tier never outlasts the remaining delay"
        assert all(t <= r.tier_ms or t > remaining for t in tiers), "largest tier that fits"


def test_due_is_enqueue_plus_tier_capped_at_deliver_at() -> None:
    assert due_ms(NOW, 5000) == NOW + 5000
    assert due_ms(NOW, 5000, deliver_at_ms=NOW + 9000) == NOW + 5000
    assert due_ms(NOW, 5000, deliver_at_ms=NOW + 3000) == NOW + 3000


def hop_bound(remaining: int, tiers: Sequence[int]) -> int:
    """Hops in the largest tier, plus the most each smaller tier can take (see tiers.py)."""
    smaller = sum(-(-b // a) - 1 for a, b in itertools.pairwise(tiers))
    return max(remaining, 0) // tiers[-1] + smaller


def simulate(
    deliver_at: int,
    now: int,
    tiers: Sequence[int],
    hold: int,
    rng: random.Random,
    skew: int = 0,
) -> tuple[int, int]:
    """Run an event through tier hops as the agents would: (hops, time it reached ready).

    Each tier hop appends at the broker (LogAppendTime = worker time + append latency + the
    broker clock's ``skew``), is released at :func:`due_ms`, then consumed after some lag.
    """
    hops = 0
    while True:
        r = route(deliver_at, now, tiers, hold)
        if r == READY:
            return hops, now
        if r == HOLD:
            assert deliver_at - now <= max(hold, tiers[0] - 1)
            now = max(now, deliver_at) + rng.randint(0, 20)  # the in-memory timer fires
            continue
        assert isinstance(r, Tier)
        enqueue = now + rng.randint(0, 50) + skew
        release = due_ms(enqueue, r.tier_ms, deliver_at)
        assert release <= deliver_at, "a tier never holds an event past its due time"
        now = max(now, release) + rng.randint(0, 300)
        hops += 1
        assert hops <= 100_000, "runaway"


# Consecutive tiers at most 20x apart, as any sensible tier list is.
ratio_tiers = st.tuples(
    st.integers(1, 5000), st.lists(st.floats(1.1, 20), min_size=0, max_size=9)
).map(lambda t: tuple(sorted({int(t[0] * math.prod(t[1][:i])) for i in range(len(t[1]) + 1)})))


@settings(max_examples=300, deadline=None)
@given(
    delay=st.integers(-10 * SECOND, YEAR),
    tiers=st.one_of(st.just(DEFAULT_MS), ratio_tiers),
    hold=st.integers(0, 5000),
    rng=st.randoms(use_true_random=False),
)
def test_tier_hops_are_never_early_and_bounded(
    delay: int, tiers: tuple[int, ...], hold: int, rng: random.Random
) -> None:
    if delay > 400 * tiers[-1]:
        delay = 400 * tiers[-1]  # keep a test case to a few hundred hops
    deliver_at = NOW + delay
    hops, ready_at = simulate(deliver_at, NOW, tiers, hold, rng)
    assert ready_at >= deliver_at, "never early"
    assert hops <= hop_bound(delay, tiers)


@settings(max_examples=200, deadline=None)
@given(
    delay=st.integers(0, 3 * DAY),
    skew=st.integers(-800, 5000),
    rng=st.randoms(use_true_random=False),
)
def test_a_skewed_broker_clock_never_makes_an_event_early(
    delay: int, skew: int, rng: random.Random
) -> None:
    deliver_at = NOW + delay
    _, ready_at = simulate(deliver_at, NOW, DEFAULT_MS, 2000, rng, skew=skew)
    assert ready_at >= deliver_at


def test_a_year_with_the_default_tiers_takes_a_few_hundred_hops() -> None:
    hops, ready_at = simulate(NOW + YEAR, NOW, DEFAULT_MS, 2000, random.Random(7))
    assert ready_at >= NOW + YEAR
    assert hop_bound(YEAR, DEFAULT_MS) == 365 + 29
    assert 364 < hops <= 365 + 29
