"""loadtest.stats: percentiles, latencies from ledger runs, per-second series."""

from __future__ import annotations

import pytest

from loadtest.ledger import Run
from loadtest.stats import (
    SERIES_P50,
    SERIES_P99,
    SERIES_THROUGHPUT,
    buckets,
    completion_rate,
    latency,
    percentile,
    rate_series,
    run_latencies,
    run_series,
    slope,
)

S = 1_000_000_000
MS = 1_000_000


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_latency_sorts_and_counts() -> None:
    lat = latency([5.0, 1.0, 3.0, 2.0, 4.0])
    assert lat is not None
    assert (lat.p50, lat.max, lat.count) == (3.0, 5.0, 5)
    assert latency([]) is None


def test_run_latencies_measure_from_intended_send() -> None:
    runs = [Run(f"e1-{i}", i * S, i * S + 10 * MS, i * S + 12 * MS, 1) for i in range(10)]
    started, finished = run_latencies(runs)
    assert started is not None
    assert finished is not None
    assert started.p99 == pytest.approx(10.0)
    assert finished.p50 == pytest.approx(12.0)


def test_buckets_group_by_width() -> None:
    points = [(0.1, 1.0), (0.9, 3.0), (1.5, 10.0), (3.2, 4.0)]
    assert buckets(points, max) == [(0.0, 3.0), (1.0, 10.0), (3.0, 4.0)]
    assert buckets(points, len, width_s=2.0) == [(0.0, 3), (2.0, 1)]


def test_rate_series_fills_empty_buckets_with_zero() -> None:
    assert rate_series([0.1, 0.2, 2.5]) == [(0.0, 2.0), (1.0, 0.0), (2.0, 1.0)]
    assert rate_series([0.1, 0.2, 0.3, 0.4], width_s=0.5) == [(0.0, 8.0)]
    assert rate_series([]) == []


def test_run_series_has_throughput_and_latency_by_finish_time() -> None:
    start = 100 * S
    runs = [
        Run(f"e1-{i}", start + i * S // 10, 0, start + i * S // 10 + 5 * MS, 1) for i in range(20)
    ]
    series = run_series(runs, start)
    assert series[SERIES_THROUGHPUT] == [(0.0, 10.0), (1.0, 10.0)]
    assert [round(y, 3) for _, y in series[SERIES_P50]] == [5.0, 5.0]
    assert len(series[SERIES_P99]) == 2
    assert run_series([], start) == {}


def test_completion_rate_counts_finishes_in_the_window() -> None:
    runs = [Run(f"e1-{i}", 0, 0, i * S // 100, 1) for i in range(300)]  # 100/s for 3 s
    assert completion_rate(runs, 1 * S, 2 * S) == pytest.approx(100.0)
    assert completion_rate(runs, 2 * S, 2 * S) == 0.0


def test_slope_is_least_squares() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(0.0, 5.0)]) == 0.0
    assert slope([(1.0, 5.0), (1.0, 6.0)]) == 0.0
