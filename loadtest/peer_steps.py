"""When a peer "keeps up" at a rate, and which rate to try next (pure: unit-tested).

A step offers ``target`` events/s open loop for a window. The worker keeps up when it finished
at least ``MIN_SHARE`` of the target rate over the window and the broker queue did not grow (an
end backlog of a quarter second of traffic is noise; more, or a rising trend, is a queue that
would grow without bound). If the publisher itself could not offer the target, the step says
nothing about the worker: it counts as a failure, flagged, so the report can say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadtest.model import Series
from loadtest.stats import slope

MIN_SHARE = 0.95
BACKLOG_FLOOR = 20  # messages: below this a queue is empty for our purpose
BACKLOG_SECONDS = 0.25  # allowed end backlog, in seconds of traffic at the target rate


@dataclass(frozen=True)
class Step:
    target: float  # events/s asked for
    offered: float  # events/s the publisher actually sent
    completed: float  # handler runs finished per second within the window
    backlog: Series  # (s since window start, messages waiting in the broker)
    lost: int = 0  # planned events never seen in the ledger (purged after a failed drain)
    publish_cpu_us: float = 0.0  # harness CPU per event sent (the publisher's own cost)

    @property
    def publisher_limited(self) -> bool:
        return self.offered < MIN_SHARE * self.target

    @property
    def keeps_up(self) -> bool:
        return (
            not self.publisher_limited
            and self.completed >= MIN_SHARE * self.target
            and backlog_bounded(self.backlog, self.target)
        )


def backlog_bounded(samples: Series, rate: float) -> bool:
    """The queue ends near empty (mean over the last quarter of the window, so one sample
    caught mid-burst does not decide) and its trend over the window stays within the allowance."""
    if not samples:
        return True
    allowance = max(BACKLOG_FLOOR, BACKLOG_SECONDS * rate)
    span = samples[-1][0] - samples[0][0]
    tail = [y for x, y in samples if x >= samples[-1][0] - span / 4]
    return sum(tail) / len(tail) <= allowance and slope(samples) * span <= allowance


class RateSearch:
    """Multiply the rate by ``factor`` while steps keep up, then bisect (geometric mean)
    between the best passing and the lowest failing rate ``refine`` times. If the very first
    step fails, divide by ``factor`` until one passes. At most ``max_steps`` steps."""

    def __init__(
        self, start: float, *, factor: float, refine: int, max_steps: int, cap: float = 100_000
    ) -> None:
        self._next: float | None = start
        self._factor = factor
        self._refine = refine
        self._left = max_steps
        self._cap = cap
        self.best: Step | None = None  # highest target that kept up
        self.failed: float | None = None  # lowest target that did not
        self.steps: list[Step] = []

    def next_rate(self) -> float | None:
        if self._left <= 0 or self._next is None:
            return None
        return self._next

    def record(self, step: Step) -> None:
        self.steps.append(step)
        self._left -= 1
        if step.keeps_up:
            if self.best is None or step.target > self.best.target:
                self.best = step
        elif self.failed is None or step.target < self.failed:
            self.failed = step.target
        self._next = self._choose()

    def _choose(self) -> float | None:
        low = self.best.target if self.best is not None else None
        high = self.failed
        if high is None:  # still climbing
            assert low is not None
            up = round(low * self._factor)
            return up if up <= self._cap else None
        if low is None:  # nothing passed yet: go down
            down = math.floor(high / self._factor)
            return down if down >= 1 else None
        if self._refine <= 0:
            return None
        self._refine -= 1
        mid = round(math.sqrt(low * high))
        return mid if low < mid < high else None
