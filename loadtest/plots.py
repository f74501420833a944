"""The report's PNGs (matplotlib, Agg: no display needed). Each plot is drawn only from rows
that carry its series (names in :mod:`loadtest.stats`); a plot with no data is not written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from loadtest.model import Result
from loadtest.stats import (
    SERIES_LAG,
    SERIES_LATENESS,
    SERIES_P50,
    SERIES_P99,
    SERIES_STEPS,
    SERIES_TARGET,
    SERIES_THROUGHPUT,
)
from loadtest.targets import Target

Plot = Callable[[list[Result], list[Target], Path], bool]


def name(r: Result) -> str:
    return f"{r.system}: {r.label}"


def _save(path: Path, draw: Callable[[], None]) -> bool:
    try:
        draw()
        plt.tight_layout()
        plt.savefig(path, dpi=100)
    finally:
        plt.close("all")
    return True


def latency(results: list[Result], _: list[Target], path: Path) -> bool:
    rows = [r for r in results if SERIES_P99 in r.series]
    if not rows:
        return False

    def draw() -> None:
        _, ax = plt.subplots(figsize=(10, 5))
        for i, r in enumerate(rows):
            color = f"C{i % 10}"
            ax.plot(*zip(*r.series[SERIES_P99], strict=True), color=color, label=f"{name(r)} p99")
            if SERIES_P50 in r.series:
                ax.plot(*zip(*r.series[SERIES_P50], strict=True), color=color, linestyle="--")
        _labels(ax, "Latency over time (intended send -> handler finished; dashed: p50)", "ms")
        ax.set_yscale("log")

    return _save(path, draw)


def throughput(results: list[Result], _: list[Target], path: Path) -> bool:
    stepped = [r for r in results if SERIES_STEPS in r.series]
    timed = [r for r in results if SERIES_THROUGHPUT in r.series]
    if not stepped and not timed:
        return False

    def draw() -> None:
        _, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
        top = 0.0
        for i, r in enumerate(stepped):
            xs, ys = zip(*sorted(r.series[SERIES_STEPS]), strict=True)
            left.plot(xs, ys, marker="o", color=f"C{i % 10}", label=name(r))
            top = max(top, *xs)
        left.plot([0, top], [0, top], color="grey", linestyle=":", label="completed = target")
        _labels(left, "Sustained search: completed vs target rate", "completed events/s")
        left.set_xlabel("target events/s")
        for i, r in enumerate(timed):
            color = f"C{i % 10}"
            right.plot(*zip(*r.series[SERIES_THROUGHPUT], strict=True), color=color, label=name(r))
            if SERIES_TARGET in r.series:
                xs, ys = zip(*r.series[SERIES_TARGET], strict=True)
                right.plot(xs, ys, color=color, linestyle="--")
        _labels(right, "Throughput over time (dashed: target)", "events/s")

    return _save(path, draw)


def lag(results: list[Result], _: list[Target], path: Path) -> bool:
    rows = [r for r in results if any(k.startswith(SERIES_LAG) for k in r.series)][:6]
    if not rows:
        return False

    def draw() -> None:
        _, axes = plt.subplots(len(rows), 1, figsize=(10, 3 * len(rows)), squeeze=False)
        for ax, r in zip(axes[:, 0], rows, strict=True):
            for key, points in r.series.items():  # scenarios add them in pipeline order
                if key.startswith(SERIES_LAG) and points:
                    style = ":" if key.endswith(".total") else "-"
                    label = key[len(SERIES_LAG) :]
                    ax.plot(*zip(*points, strict=True), linestyle=style, label=label)
            _labels(ax, f"Consumer lag per layer: {name(r)}", "records")

    return _save(path, draw)


def lateness(results: list[Result], _: list[Target], path: Path) -> bool:
    rows = [r for r in results if r.series.get(SERIES_LATENESS)]
    if not rows:
        return False

    def draw() -> None:
        _, ax = plt.subplots(figsize=(10, 5))
        for r in rows:
            ax.hist([y for _, y in r.series[SERIES_LATENESS]], bins=50, alpha=0.5, label=name(r))
        _labels(ax, "Lateness of delayed events (negative = early)", "events")
        ax.set_xlabel("ms after due")

    return _save(path, draw)


def ratios(_: list[Result], targets: list[Target], path: Path) -> bool:
    bars = [t for t in targets if t.ratio is not None and t.threshold is not None]
    if not bars:
        return False

    def draw() -> None:
        _, ax = plt.subplots(figsize=(10, 4))
        xs = range(len(bars))
        colors = ["C2" if t.met else "C3" for t in bars]
        ax.bar(xs, [t.ratio or 0.0 for t in bars], color=colors)
        for x, t in zip(xs, bars, strict=True):
            ax.hlines(t.threshold or 0.0, x - 0.4, x + 0.4, colors="black", linestyles="--")
        ax.set_xticks(list(xs), [t.name.replace(" sustained throughput", "") for t in bars])
        ax.set_title("Throughput ratios (dashed: target)")
        ax.set_ylabel("ratio")

    return _save(path, draw)


def _labels(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("s")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


PLOTS: dict[str, Plot] = {
    "latency.png": latency,
    "throughput.png": throughput,
    "lag.png": lag,
    "lateness.png": lateness,
    "ratios.png": ratios,
}
