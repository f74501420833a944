"""The run's report: ``report.md`` and its PNGs in the run's out dir.

Sections: the machine, the targets as same-run ratios, every scenario's rows (or why it failed
or was skipped), then the plots. Rendering takes plain data (a :class:`RunSummary`) so it is
tested on synthetic Results without a broker.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loadtest import machine, plots, targets
from loadtest.model import Latency, Result

if TYPE_CHECKING:
    from loadtest.runner import RunSummary

REPORT = "report.md"


def write(summary: RunSummary, out_dir: Path, describe: dict[str, str] | None = None) -> Path:
    """Plots first (the markdown links only those written), then ``report.md``; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    goals = targets.compute(summary.results)
    drawn, broken = [], []
    for name, plot in plots.PLOTS.items():
        try:  # a plot that cannot be drawn costs its picture, not the report
            if plot(summary.results, goals, out_dir / name):
                drawn.append(name)
        except Exception as exc:
            broken.append(f"{name}: {type(exc).__name__}: {exc}")
    text = render(summary, goals, drawn, machine.describe() if describe is None else describe)
    if broken:
        text += "\nPlots not drawn: " + "; ".join(broken) + "\n"
    path = out_dir / REPORT
    path.write_text(text, encoding="utf-8")
    return path


def render(
    summary: RunSummary,
    goals: list[targets.Target],
    images: list[str],
    describe: dict[str, str],
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(summary.started))
    kind = (
        "smoke (seconds per scenario: checks the harness, not the numbers)"
        if summary.smoke
        else "full"
    )
    lines = [
        "# MSM load test",
        "",
        f"Run {when}, {kind}, {summary.seconds:.0f} s. "
        "All systems ran against the same local broker with the same payloads and no-op handler; "
        "latencies are from each event's intended send time (open loop).",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in describe.items()),
        "",
        "## Targets (ratios from this run)",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
        *(f"| {t.name} | {t.measured} | {t.goal} | {_met(t.met)} |" for t in goals),
        "",
    ]
    for outcome in summary.outcomes:
        lines += [f"## {outcome.name}: {outcome.status}", ""]
        if outcome.status == "skipped":
            lines += [f"Skipped: {outcome.error}.", ""]
            continue
        if outcome.status == "failed":
            lines += [
                f"Failed after {outcome.seconds:.0f} s (worker logs under work/{outcome.name}/):",
                "",
                "```",
                outcome.error.rstrip(),
                "```",
                "",
            ]
        if outcome.results:
            lines += [*_table(outcome.results), ""]
            lines += [
                f"- {r.system}, {r.label}: {r.notes.strip()}"
                for r in outcome.results
                if r.notes.strip()
            ]
            lines.append("")
        if outcome.status == "ok":
            lines += [f"Took {outcome.seconds:.0f} s.", ""]
    if images:
        lines += ["## Plots", ""]
        lines += [f"![{Path(i).stem}]({i})\n" for i in images]
    return "\n".join(lines).rstrip() + "\n"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("yes" if met else "**no**")


def _table(results: list[Result]) -> list[str]:
    lines = [
        "| system | row | throughput /s | target /s | started p50 / p95 / p99 / max ms "
        "| finished p50 / p95 / p99 / max ms | n | other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = r.finished.count if r.finished else (r.started.count if r.started else None)
        cells = [
            r.system,
            r.label,
            _num(r.throughput),
            _num(r.target_rate),
            _latency(r.started),
            _latency(r.finished),
            "" if n is None else str(n),
            ", ".join(f"{k} {_num(v)}" for k, v in sorted(r.extra.items())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) >= 1:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _latency(lat: Latency | None) -> str:
    if lat is None:
        return ""
    return " / ".join(f"{v:.1f}" for v in (lat.p50, lat.p95, lat.p99, lat.max))
