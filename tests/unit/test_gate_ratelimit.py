"""Token buckets and the rate shared across a consumer group's members, in simulated time."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.gate import FlowError, TokenBucket, default_burst, share, share_burst
from pipeline.topology import Rate

PER_SECOND = Rate(count=500, per=timedelta(seconds=1))


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(Rate(count=10, per=timedelta(seconds=1)), burst=5, now=100.0)
    assert [bucket.try_acquire(1, 100.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.delay_until_available(1, 100.0) == pytest.approx(0.1)
    assert not bucket.try_acquire(1, 100.05)
    assert bucket.try_acquire(1, 100.1)
    assert bucket.delay_until_available(2, 100.1) == pytest.approx(0.2)
    assert bucket.tokens == pytest.approx(0.0)
    assert bucket.try_acquire(5, 200.0)  # refilled, but never above the burst
    assert not bucket.try_acquire(1, 200.0)


def test_delay_until_available_takes_nothing() -> None:
    bucket = TokenBucket(PER_SECOND, burst=1, now=0.0)
    assert bucket.delay_until_available(1, 0.0) == 0.0
    assert bucket.delay_until_available(1, 0.0) == 0.0
    assert bucket.try_acquire(1, 0.0)


def test_a_clock_that_steps_back_neither_adds_nor_removes_tokens() -> None:
    bucket = TokenBucket(PER_SECOND, burst=2, now=10.0)
    assert bucket.try_acquire(2, 10.0)
    assert not bucket.try_acquire(1, 9.0)
    assert bucket.tokens == 0.0
    assert bucket.try_acquire(1, 10.002)


@pytest.mark.parametrize("n", [0, -1, 3, math.nan])
def test_impossible_requests_are_a_caller_bug(n: float) -> None:
    bucket = TokenBucket(PER_SECOND, burst=2, now=0.0)
    with pytest.raises(FlowError):
        bucket.try_acquire(n, 0.0)
    with pytest.raises(FlowError):
        bucket.delay_until_available(n, 0.0)


def test_a_bucket_holds_at_least_one_token() -> None:
    with pytest.raises(FlowError):
        TokenBucket(PER_SECOND, burst=0.5, now=0.0)


def test_set_rate_keeps_earned_tokens_up_to_the_new_burst() -> None:
    bucket = TokenBucket(PER_SECOND, burst=50, now=0.0)
    bucket.set_rate(share(PER_SECOND, 5), burst=10, now=1.0)
    assert bucket.tokens == 10
    assert bucket.delay_until_available(11 - 1, 1.0) == 0.0
    assert bucket.try_acquire(10, 1.0)
    assert bucket.delay_until_available(1, 1.0) == pytest.approx(0.01)  # 100/s now


def test_share_is_exact() -> None:
    assert share(PER_SECOND, 3) == Rate(count=500, per=timedelta(seconds=3))
    assert share(PER_SECOND, 3).per_second * 3 == pytest.approx(500)
    assert share(PER_SECOND, 1) == PER_SECOND
    assert share_burst(50, 4) == 12.5
    assert share_burst(2, 8) == 1.0
    with pytest.raises(FlowError):
        share(PER_SECOND, 0)
    with pytest.raises(FlowError):
        share_burst(1, 0)


def test_default_burst_is_a_tenth_of_a_second() -> None:
    assert default_burst(PER_SECOND) == 50
    assert default_burst(Rate(count=5, per=timedelta(seconds=10))) == 1.0


def admitted(rate: Rate, members: int, seconds: float, lateness: float, seed: int) -> int:
    """Every member busy for ``seconds``: it takes a token whenever it can and otherwise sleeps
    for delay_until_available plus up to ``lateness`` seconds (a busy event loop). Lateness costs
    nothing while the bucket has room for the tokens earned meanwhile: the default burst, a tenth
    of a second of the rate, absorbs loop latencies below 100 ms."""
    rng = random.Random(seed)
    mine = share(rate, members)
    burst = share_burst(default_burst(rate), members)
    interval = 1 / mine.per_second
    total = 0
    for _ in range(members):
        now = rng.uniform(0, interval)  # members do not start in lockstep
        bucket = TokenBucket(mine, burst, now=0.0)
        while now < seconds:
            if bucket.try_acquire(1, now):
                total += 1
            else:
                now += bucket.delay_until_available(1, now) + rng.uniform(0, lateness)
    return total


@pytest.mark.parametrize("members", [1, 2, 3, 8])
def test_ten_seconds_admit_the_rate_within_ten_percent_across_members(members: int) -> None:
    expected = PER_SECOND.per_second * 10
    got = admitted(PER_SECOND, members, 10.0, lateness=0.02, seed=members)
    assert abs(got - expected) <= 0.1 * expected, (got, expected)


@settings(max_examples=40, deadline=None)
@given(
    per=st.sampled_from([timedelta(seconds=1), timedelta(seconds=10), timedelta(minutes=1)]),
    members=st.integers(1, 12),
    lateness=st.floats(0, 0.005),
    seed=st.integers(0, 2**32),
    data=st.data(),
)
def test_admitted_count_is_within_ten_percent_of_rate_times_time(
    per: timedelta, members: int, lateness: float, seed: int, data: st.DataObject
) -> None:
    # Each member may admit one whole token early (its bucket starts with at least one): the
    # bound needs rate * 10 s to be large against the number of members, here >= 20 per member.
    seconds = per.total_seconds()
    count = data.draw(st.integers(math.ceil(2 * members * seconds), int(3000 * seconds)))
    rate = Rate(count=count, per=per)
    expected = rate.per_second * 10
    got = admitted(rate, members, 10.0, lateness, seed)
    assert abs(got - expected) <= 0.1 * expected, (got, expected)
