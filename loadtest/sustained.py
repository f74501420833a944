"""Sustained throughput: the highest open-loop rate at which the system keeps up, found by trying.

A system "keeps up" with a rate when, over a fixed window, its handlers complete at least
:data:`COMPLETION_SHARE` of that rate and its backlog (consumer lag, queue depth) is not
growing. Rates step up by ``factor`` from ``start`` until one fails, then a few bisection steps
narrow the gap. If the start rate already fails, rates step *down* until one holds, so a slow
machine still gets a number rather than a constant tuned to another machine.

The search is independent of the system: ``measure(rate)`` runs one window and returns a
:class:`Step`; the decision (:func:`verdict`) is pure, so it is unit-tested without a broker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loadtest.model import Series
from loadtest.stats import slope

COMPLETION_SHARE = 0.95
# Backlog growing faster than this share of the target rate, over the window, is unbounded...
GROWTH_SHARE = 0.05


@dataclass(frozen=True)
class Step:
    rate: float  # the target rate of this window (events/s)
    completed: float  # handler completions per second measured in the window
    backlog: Series = field(default_factory=list)  # (s, records waiting) samples in the window
    # ...unless the backlog stays below this many records (what batching and commit intervals
    # leave in flight even when nothing queues up).
    backlog_floor: float = 0.0


def verdict(step: Step) -> str | None:
    """None when the step held; otherwise why not, for the report."""
    if step.completed < COMPLETION_SHARE * step.rate:
        share = step.completed / step.rate if step.rate else 0.0
        return f"completed {step.completed:.0f}/s = {share:.0%} of target"
    growth = slope(step.backlog)
    last = step.backlog[-1][1] if step.backlog else 0.0
    if growth > GROWTH_SHARE * step.rate and last > step.backlog_floor:
        return f"backlog growing {growth:.0f}/s to {last:.0f}"
    return None


def held(step: Step) -> bool:
    return verdict(step) is None


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    sustained: float | None = None  # highest rate that held; None if none did

    def describe(self) -> str:
        """One line per step: rate, completion, and why it failed."""
        lines = []
        for s in self.steps:
            why = verdict(s)
            lines.append(
                f"{s.rate:.0f}/s -> {s.completed:.0f}/s: " + ("held" if why is None else why)
            )
        return "; ".join(lines)


def find_sustained(
    measure: Callable[[float], Step],
    *,
    start: float,
    factor: float = 1.5,
    max_steps: int = 12,
    bisect: int = 2,
    floor: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> Search:
    """Step up from ``start`` by ``factor`` until a rate fails, then bisect ``bisect`` times.

    At most ``max_steps`` windows in the stepping phase (a smoke run passes a small number);
    ``progress(done, planned)`` is told after each window.
    """
    search = Search()
    planned = max_steps + bisect

    def run(rate: float) -> bool:
        step = measure(rate)
        search.steps.append(step)
        if progress is not None:
            progress(len(search.steps), planned)
        return held(step)

    rate, low, high = start, 0.0, 0.0
    while len(search.steps) < max_steps:
        if run(rate):
            low = rate
            if high:
                break  # stepping down found one that holds
            rate *= factor
        else:
            high = rate
            if low:
                break
            rate /= factor
            if rate < floor:
                break
    for _ in range(bisect):
        if not (low and high) or high / low < 1.05:
            break
        mid = (low * high) ** 0.5
        if run(mid):
            low = mid
        else:
            high = mid
    search.sustained = low or None
    return search
