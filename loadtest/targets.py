"""The issue's targets, computed from the Results of one run (so every ratio is same-run).

Which Result is which, by convention (scenario modules follow it):
- a system's sustained throughput is its row with ``throughput`` set and no ``target_rate``
  (rows at a fixed rate set ``target_rate``), else its highest ``throughput``; MSM's is
  scenario "msm", system "msm"; Celery/Dramatiq are scenario "peers", systems "celery" and
  "dramatiq"; the one-hop Python ceiling is scenario "ceilings", system "confluent-kafka";
- MSM's latency at half load: scenario "msm" row with ``extra["load_fraction"] == 0.5``;
- delays: scenario "delays", system "msm", ``extra["lateness_p99_ms"]`` (else ``started.p99``)
  and ``extra["early"]``; the worst row counts;
- RSS: scenario "scale", system "msm", rows with ``extra["pending"]`` and ``extra["rss_mb"]``.
A target whose rows are missing is listed as not measured, not as failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from loadtest.model import Result


@dataclass(frozen=True)
class Target:
    name: str
    measured: str  # formatted value, or "not measured"
    goal: str
    met: bool | None  # None: not measured
    ratio: float | None = None  # for the ratio bar chart (throughput targets)
    threshold: float | None = None


def sustained(results: Iterable[Result], scenario: str, system: str) -> float | None:
    rows = [r for r in results if r.scenario == scenario and r.system == system]
    for r in rows:
        if r.throughput is not None and r.target_rate is None:
            return r.throughput
    return max((r.throughput for r in rows if r.throughput is not None), default=None)


def compute(results: list[Result]) -> list[Target]:
    msm = sustained(results, "msm", "msm")
    out = [
        _ratio(
            "MSM / Celery sustained throughput", msm, sustained(results, "peers", "celery"), 2.0
        ),
        _ratio(
            "MSM / Dramatiq sustained throughput", msm, sustained(results, "peers", "dramatiq"), 1.0
        ),
        _ratio(
            "MSM / raw confluent-kafka one hop",
            msm,
            sustained(results, "ceilings", "confluent-kafka"),
            0.10,
        ),
    ]
    half = [r for r in results if r.scenario == "msm" and r.extra.get("load_fraction") == 0.5]
    p99 = half[0].finished.p99 if half and half[0].finished else None
    out.append(_below("MSM p99 end to end at half the sustained rate (ms)", p99, 50.0))
    delays = [r for r in results if r.scenario == "delays" and r.system == "msm"]
    late = [r.extra.get("lateness_p99_ms", r.started.p99 if r.started else None) for r in delays]
    known = [x for x in late if x is not None]
    out.append(_below("Delay lateness p99, worst delay (ms)", max(known) if known else None, 100.0))
    early = [r.extra["early"] for r in delays if "early" in r.extra]
    out.append(
        Target(
            "Early deliveries",
            f"{sum(early):.0f}" if early else "not measured",
            "0",
            (sum(early) == 0) if early else None,
        )
    )
    out.append(_rss([r for r in results if r.scenario == "scale" and r.system == "msm"]))
    return out


def _ratio(name: str, ours: float | None, theirs: float | None, goal: float) -> Target:
    if ours is None or not theirs:
        return Target(name, "not measured", f">= {goal:g}", None, threshold=goal)
    ratio = ours / theirs
    shown = f"{ratio:.2f} ({ours:.0f}/s vs {theirs:.0f}/s)"
    return Target(name, shown, f">= {goal:g}", ratio >= goal, ratio, goal)


def _below(name: str, value: float | None, goal: float) -> Target:
    if value is None:
        return Target(name, "not measured", f"< {goal:g}", None)
    return Target(name, f"{value:.1f}", f"< {goal:g}", value < goal)


def _rss(rows: list[Result]) -> Target:
    name = "Worker RSS, most vs no pending delayed events"
    points = sorted(
        (r.extra["pending"], r.extra["rss_mb"])
        for r in rows
        if "pending" in r.extra and "rss_mb" in r.extra
    )
    if len(points) < 2 or points[0][0] != 0 or not points[0][1]:
        return Target(name, "not measured", "within 10 %", None)
    (_, base), (most, top) = points[0], points[-1]
    change = top / base - 1
    shown = f"{change:+.1%} ({base:.0f} MB at 0, {top:.0f} MB at {most:,.0f})"
    return Target(name, shown, "within 10 %", abs(change) <= 0.10)
