"""Rate and ETA math of `msm lag --watch`, on synthetic offset samples (no broker)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pipeline.errors import KafkaUnavailableError
from pipeline.ops.lag import GroupLag, LagReport, Member, build_group_lag
from pipeline.ops.rates import (
    Flow,
    RateSampler,
    drain,
    format_eta,
    format_seconds,
    sum_flows,
    watch,
)

WORKER = Member("m-1", "worker", "/127.0.0.1")
Offsets = Mapping[tuple[str, int], tuple[int | None, int | None]]  # (topic, p) -> (committed, end)


def sample(at: float, groups: Mapping[str, Offsets]) -> LagReport:
    """A lag report at monotonic time ``at`` from (committed, end) per partition."""
    built: list[GroupLag] = []
    for group, offsets in groups.items():
        committed = {tp: c for tp, (c, _) in offsets.items() if c is not None}
        ends = {tp: e for tp, (_, e) in offsets.items()}
        held = dict.fromkeys(offsets, WORKER)  # held partitions are listed even without commits
        built.append(build_group_lag(group, "Stable", 1, committed, held, ends))
    return LagReport(tuple(built), 1_700_000_000.0 + at, at)


def test_first_sample_has_no_rates_yet() -> None:
    rates = RateSampler().update(sample(0, {"g": {("t", 0): (5, 10)}}))
    assert rates.seconds is None
    f = rates.by_topic[("g", "t")]
    assert (f.lag, f.rate_in, f.rate_out, f.trend, f.eta_s) == (5, None, None, "unknown", None)
    assert rates.by_group["g"].trend == "unknown"


def test_rates_in_and_out_per_second_summed_over_partitions() -> None:
    sampler = RateSampler(half_life_s=0)  # no smoothing: raw rates
    sampler.update(sample(0, {"g": {("t", 0): (0, 100), ("t", 1): (0, 50)}}))
    rates = sampler.update(sample(2, {"g": {("t", 0): (60, 120), ("t", 1): (40, 70)}}))
    assert rates.seconds == 2
    f = rates.by_topic[("g", "t")]
    assert f.rate_in == (20 + 20) / 2
    assert f.rate_out == (60 + 40) / 2
    assert f.lag == 60 + 30
    assert f.trend == "draining"
    assert f.eta_s == pytest.approx(90 / (50 - 20))
    assert rates.by_group["g"] == Flow(90, 20.0, 50.0, "draining", 3.0)


def test_growing_when_more_comes_in_than_goes_out() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(sample(0, {"g": {("t", 0): (0, 10)}}))
    f = sampler.update(sample(1, {"g": {("t", 0): (5, 30)}})).by_topic[("g", "t")]
    assert (f.rate_in, f.rate_out, f.trend, f.eta_s) == (20.0, 5.0, "growing", None)
    assert format_eta(f) == "growing"


def test_first_commit_and_new_partitions_are_not_bursts() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(sample(0, {"g": {("t", 0): (None, 1000)}}))
    # Partition 0 gains its first commit, partition 1 appears: neither is throughput.
    rates = sampler.update(sample(1, {"g": {("t", 0): (990, 1000), ("t", 1): (500, 900)}}))
    f = rates.by_topic[("g", "t")]
    assert (f.rate_in, f.rate_out) == (0.0, 0.0)


def test_offsets_moving_back_count_as_zero() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(sample(0, {"g": {("t", 0): (50, 100)}}))
    f = sampler.update(sample(1, {"g": {("t", 0): (0, 100)}})).by_topic[("g", "t")]
    assert (f.rate_in, f.rate_out, f.lag) == (0.0, 0.0, 100)
    assert f.trend == "stalled"


def test_smoothing_by_half_life_in_seconds() -> None:
    sampler = RateSampler(half_life_s=2.0)
    sampler.update(sample(0, {"g": {("t", 0): (0, 0)}}))
    first = sampler.update(sample(2, {"g": {("t", 0): (0, 200)}})).by_topic[("g", "t")]
    assert first.rate_in == 100.0  # the first measured rate is taken as is
    # The next 2 s (one half-life) produce nothing: half the old rate remains.
    second = sampler.update(sample(4, {"g": {("t", 0): (0, 200)}})).by_topic[("g", "t")]
    assert second.rate_in == pytest.approx(50.0)
    # Two 1 s steps weigh the same as one 2 s step.
    third = sampler.update(sample(5, {"g": {("t", 0): (0, 200)}})).by_topic[("g", "t")]
    fourth = sampler.update(sample(6, {"g": {("t", 0): (0, 200)}})).by_topic[("g", "t")]
    assert third.rate_in is not None
    assert fourth.rate_in == pytest.approx(25.0)


def test_the_same_instant_twice_changes_nothing() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(sample(0, {"g": {("t", 0): (0, 0)}}))
    sampler.update(sample(1, {"g": {("t", 0): (10, 10)}}))
    again = sampler.update(sample(1, {"g": {("t", 0): (10, 10)}}))
    assert again.by_topic[("g", "t")].rate_out == 10.0


@pytest.mark.parametrize(
    ("lag", "rate_in", "rate_out", "trend", "eta"),
    [
        (0, 5.0, 1.0, "caught_up", None),
        (10, None, None, "unknown", None),
        (100, 10.0, 30.0, "draining", 5.0),
        (100, 30.0, 10.0, "growing", None),
        (100, 0.0, 0.0, "stalled", None),
        (100, 100.0, 101.0, "steady", None),  # within 2 %: keeping pace, not draining
        (100, 0.0, 0.04, "stalled", None),
    ],
)
def test_trend_and_eta(
    lag: int, rate_in: float | None, rate_out: float | None, trend: str, eta: float | None
) -> None:
    assert drain(lag, rate_in, rate_out) == (trend, eta)


def test_eta_column_words() -> None:
    assert format_eta(Flow(100, 1.0, 2.0, "draining", 100.0)) == "1m40s"
    assert format_eta(Flow(0, 1.0, 1.0, "caught_up", None)) == "—"
    assert format_eta(Flow(5, 1.0, 1.0, "steady", None)) == "—"
    assert format_eta(Flow(5, 0.0, 0.0, "stalled", None)) == "stalled"
    assert format_eta(Flow(5, None, None, "unknown", None)) == ""
    assert [format_seconds(s) for s in (4.4, 61, 3600 * 2 + 60 * 5, 500 * 3600)] == [
        "4s",
        "1m01s",
        "2h05m",
        ">100h",
    ]


def test_sum_of_flows() -> None:
    total = sum_flows([Flow(10, 1.0, 3.0, "draining", 5.0), Flow(20, 2.0, 4.0, "draining", 10.0)])
    assert (total.lag, total.rate_in, total.rate_out, total.eta_s) == (30, 3.0, 7.0, 7.5)
    assert sum_flows([Flow(1, None, None, "unknown", None)]).rate_in is None


def test_watch_counts_refreshes_and_survives_kafka_going_away() -> None:
    now = [0.0]
    slept: list[float] = []
    answers: list[LagReport | None] = [
        sample(0, {"g": {("t", 0): (0, 0)}}),
        None,
        sample(2, {"g": {("t", 0): (4, 8)}}),
    ]

    def collect() -> LagReport:
        now[0] += 0.25  # each collection takes a quarter second
        report = answers.pop(0)
        if report is None:
            raise KafkaUnavailableError("Kafka is unavailable: down")
        return report

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ticks = list(
        watch(collect, RateSampler(half_life_s=0), 1.0, 3, sleep=sleep, clock=lambda: now[0])
    )
    assert [t.error for t in ticks] == [None, "Kafka is unavailable: down", None]
    assert slept == [0.75, 0.75]  # the interval includes collecting; no sleep after the last
    last = ticks[2].rates
    assert last is not None
    assert last.by_topic[("g", "t")].rate_in == 4.0  # compared with the last good sample
