"""Scenario 3: MSM end to end through all five layers, immediate events, one subscriber.

Sustained throughput first (:mod:`loadtest.sustained`, completion measured from the handler
ledger, backlog from every layer's consumer lag), then latency percentiles at 50 % and 80 % of
it, intended send -> handler started and -> finished, with series for the plots.
"""

from __future__ import annotations

import os

from loadtest.model import BenchContext, Result, Series
from loadtest.msm_run import Pipeline, Window, msm_pipeline
from loadtest.stats import (
    SERIES_LAG,
    SERIES_STEPS,
    SERIES_TARGET,
    completion_rate,
    run_latencies,
    run_series,
)
from loadtest.sustained import Search, Step, find_sustained

FRACTIONS = (0.5, 0.8)
# Rows of lag that are not a backlog: each of the five groups commits every 0.5 s, so up to
# about half a second of events per layer shows as lag while nothing queues.
FLOOR_S = 0.5 * 5
WORKERS = max(1, min(4, os.cpu_count() or 1))


def run(ctx: BenchContext) -> list[Result]:
    window_s = ctx.seconds(20, 3)
    drain_s = ctx.seconds(60, 10)
    start = ctx.seconds(200, 100)
    label = f"5 layers, 1 subscriber, {WORKERS} workers"
    with msm_pipeline(ctx, workers=WORKERS) as pipeline:
        ctx.progress("msm: warm-up", 0.02)
        pipeline.window(start, ctx.seconds(5, 1), drain_s=drain_s)

        def measure(rate: float) -> Step:
            ctx.progress(f"msm: sustained, trying {rate:.0f}/s", -1)
            w = pipeline.window(rate, window_s, drain_s=drain_s)
            steady_from = w.start_ns + (w.end_ns - w.start_ns) // 4  # skip the ramp-up
            backlog = _lag(pipeline, w, window_s).get(f"{SERIES_LAG}total", [])
            completed = completion_rate(w.runs, steady_from, w.end_ns)
            return Step(rate, completed, backlog, backlog_floor=rate * FLOOR_S)

        search = find_sustained(
            measure,
            start=start,
            max_steps=2 if ctx.smoke else 12,
            bisect=0 if ctx.smoke else 2,
            progress=lambda done, planned: ctx.progress("msm: sustained", 0.7 * done / planned),
        )
        results = [_sustained(search, label)]
        basis = search.sustained or min(s.rate for s in search.steps)
        for i, fraction in enumerate(FRACTIONS):
            ctx.progress(f"msm: latency at {fraction:.0%}", 0.7 + 0.15 * i)
            w = pipeline.window(basis * fraction, ctx.seconds(30, 3), drain_s=drain_s)
            results.append(_latency_row(pipeline, w, fraction, label, ctx.seconds(30, 3)))
        ctx.progress("msm: stopping", 1.0)
    if search.sustained is None:
        results[0].notes += " No rate held: latencies are at fractions of the lowest rate tried."
    return results


def _lag(pipeline: Pipeline, w: Window, seconds: float) -> dict[str, Series]:
    return pipeline.lag.window(w.start_mono, w.start_mono + seconds + 1)


def _sustained(search: Search, label: str) -> Result:
    steps: Series = [(s.rate, s.completed) for s in search.steps]
    return Result(
        scenario="msm",
        system="msm",
        label=f"sustained, {label}",
        throughput=search.sustained,
        series={SERIES_STEPS: steps},
        extra={"steps": float(len(search.steps))},
        notes="Steps: " + search.describe() + ".",
    )


def _latency_row(
    pipeline: Pipeline, w: Window, fraction: float, label: str, seconds: float
) -> Result:
    started, finished = run_latencies(w.runs)
    series = run_series(w.runs, w.start_ns)
    series[SERIES_TARGET] = [(0.0, w.rate), (seconds, w.rate)]
    series.update(_lag(pipeline, w, seconds))
    lag_total = [v for _, v in series.get(f"{SERIES_LAG}total", [])]
    return Result(
        scenario="msm",
        system="msm",
        label=f"{fraction:.0%} of sustained, {label}",
        throughput=completion_rate(w.runs, w.start_ns, max(r.finished_ns for r in w.runs))
        if w.runs
        else 0.0,
        target_rate=w.rate,
        started=started,
        finished=finished,
        extra={
            "load_fraction": fraction,
            "events": float(w.count),
            "missing": float(w.count - len(w.runs)),
            "publisher_behind_ms": w.behind_ms,
            "lag_max": float(max(lag_total, default=0)),
        },
        series=series,
    )
