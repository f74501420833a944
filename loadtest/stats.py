"""Percentiles and per-second series from raw samples, the same way for every system.

Every scenario reduces its ledger (or whatever it measured) with these functions, so a p99 in
one row of the report means what it means in every other row. Series names the report plots
are the ``SERIES_*`` constants below; a scenario that fills them gets its plots for free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from loadtest.ledger import Run
from loadtest.model import Latency, Series

# Series the report knows how to plot (x: seconds since the row's start unless said otherwise).
SERIES_THROUGHPUT = "throughput"  # completions per second
SERIES_TARGET = "target"  # the open-loop rate asked for
SERIES_P50 = "latency_p50_ms"  # per-second p50 of intended send -> handler finished
SERIES_P99 = "latency_p99_ms"
SERIES_LAG = "lag."  # prefix: "lag.<layer>" consumer lag (records) sampled once a second
SERIES_LATENESS = "lateness_ms"  # raw samples (x: due time, y: ms late); a histogram
SERIES_STEPS = "steps"  # sustained search: (target rate, completed rate) per step


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``ordered`` is sorted."""
    if not ordered:
        raise ValueError("percentile of no samples")
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency(values_ms: Iterable[float]) -> Latency | None:
    """p50/p95/p99/max of the samples, or None when there are none."""
    ordered = sorted(values_ms)
    if not ordered:
        return None
    return Latency(
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        max=ordered[-1],
        count=len(ordered),
    )


def run_latencies(runs: Iterable[Run]) -> tuple[Latency | None, Latency | None]:
    """(intended send -> started, intended send -> finished) for handler runs."""
    listed = list(runs)
    started = latency((r.started_ns - r.sent_ns) / 1e6 for r in listed)
    finished = latency((r.finished_ns - r.sent_ns) / 1e6 for r in listed)
    return started, finished


def buckets(
    points: Iterable[tuple[float, float]],
    reduce: Callable[[list[float]], float],
    width_s: float = 1.0,
) -> Series:
    """Points grouped by ``x // width_s``; each bucket's values reduced, at the bucket start."""
    grouped: dict[int, list[float]] = {}
    for x, y in points:
        grouped.setdefault(math.floor(x / width_s), []).append(y)
    return [(k * width_s, reduce(v)) for k, v in sorted(grouped.items())]


def rate_series(times_s: Iterable[float], width_s: float = 1.0) -> Series:
    """Events per second in each bucket of ``width_s`` (empty buckets between are zeros)."""
    counted = buckets(((t, 1.0) for t in times_s), len, width_s)
    if not counted:
        return []
    found = dict(counted)
    first, last = round(counted[0][0] / width_s), round(counted[-1][0] / width_s)
    return [(k * width_s, found.get(k * width_s, 0.0) / width_s) for k in range(first, last + 1)]


def run_series(runs: Iterable[Run], start_ns: int, width_s: float = 1.0) -> dict[str, Series]:
    """Throughput and p50/p99 finish latency over time (by finish time) for the plots."""
    points = [((r.finished_ns - start_ns) / 1e9, (r.finished_ns - r.sent_ns) / 1e6) for r in runs]
    if not points:
        return {}
    return {
        SERIES_THROUGHPUT: rate_series((x for x, _ in points), width_s),
        SERIES_P50: buckets(points, lambda v: percentile(sorted(v), 50), width_s),
        SERIES_P99: buckets(points, lambda v: percentile(sorted(v), 99), width_s),
    }


def completion_rate(runs: Iterable[Run], from_ns: int, to_ns: int) -> float:
    """Runs finished in ``[from_ns, to_ns)`` per second."""
    if to_ns <= from_ns:
        return 0.0
    done = sum(1 for r in runs if from_ns <= r.finished_ns < to_ns)
    return done / ((to_ns - from_ns) / 1e9)


def slope(series: Series) -> float:
    """Least-squares slope (y per x unit); 0 with fewer than two distinct x."""
    n = len(series)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in series) / n
    my = sum(y for _, y in series) / n
    var = sum((x - mx) ** 2 for x, _ in series)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in series) / var
