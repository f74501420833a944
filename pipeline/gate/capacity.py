"""A subscriber's capacity: tasks in flight under ``max_in_flight``, and an adaptive limit below it.

:class:`InFlight` counts dispatched, unfinished tasks by task id, because outcomes arrive at least
once: a duplicate outcome must not free a slot twice, and a redelivered dispatch must not take two.

:class:`Aimd` is TCP's congestion rule applied to a subscriber: the limit grows by one after a
window of successes as large as the limit (so doubling takes as long as at full speed), and halves
on trouble: a timeout, 429, 503, or a failure when the error rate over a sliding window is above a
threshold. One outage answers hundreds of tasks at once, so halving happens at most once per
``cooldown``; the limit stays in [1, max_in_flight] and climbs back while the subscriber is healthy.
Both take an injectable clock (monotonic seconds), so tests simulate time.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pipeline.gate.errors import FlowError

__all__ = ["Aimd", "AimdSettings", "InFlight", "Signal", "share_in_flight", "signal_for_http"]

Clock = Callable[[], float]


class Signal(StrEnum):
    """What one finished task says about its subscriber's health."""

    SUCCESS = "success"
    TIMEOUT = "timeout"  # no answer in the subscriber's timeout, or HTTP 408/504
    THROTTLED = "throttled"  # HTTP 429
    UNAVAILABLE = "unavailable"  # HTTP 503
    ERROR = "error"  # any other failure: counts toward the error rate only


TROUBLE = frozenset({Signal.TIMEOUT, Signal.THROTTLED, Signal.UNAVAILABLE})


def signal_for_http(status: int) -> Signal:
    if 200 <= status < 300:
        return Signal.SUCCESS
    return {408: Signal.TIMEOUT, 504: Signal.TIMEOUT, 429: Signal.THROTTLED}.get(
        status, Signal.UNAVAILABLE if status == 503 else Signal.ERROR
    )


def share_in_flight(max_in_flight: int, members: int) -> int:
    """One member's part of a subscriber's ``max_in_flight`` among the ``members`` of its
    flow-control group (as :func:`~pipeline.gate.ratelimit.share` does for the rate).
    Rounded down so the group stays under the cap, but at least 1, so with more members than
    ``max_in_flight`` the group may exceed it by up to ``members - max_in_flight``."""
    if members < 1:
        raise FlowError(f"max_in_flight is shared among at least 1 member, not {members}")
    return max(1, max_in_flight // members)


class InFlight:
    """Task ids dispatched and not yet finished, at most ``max_in_flight`` of them."""

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise FlowError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.max_in_flight = max_in_flight
        self._started: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._started)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._started

    def has_room(self, limit: int | None = None) -> bool:
        """Room for one more under ``max_in_flight`` and the adaptive ``limit`` if given."""
        cap = self.max_in_flight if limit is None else min(limit, self.max_in_flight)
        return len(self._started) < cap

    def start(self, task_id: str, now: float) -> bool:
        """Count a dispatch; a task already in flight is not counted twice. False when full."""
        if task_id in self._started:
            return True
        if len(self._started) >= self.max_in_flight:
            return False
        self._started[task_id] = now
        return True

    def finish(self, task_id: str, now: float) -> float | None:
        """Free the task's slot; its time in flight, or None for a task not in flight
        (a duplicate outcome, or one dispatched before this worker took the partition)."""
        started = self._started.pop(task_id, None)
        return None if started is None else now - started

    def overdue(self, now: float, older_than: float) -> list[str]:
        """Tasks in flight for longer than ``older_than`` seconds: outcomes lost or a subscriber
        that hangs. The caller treats them as timeouts and finishes them."""
        return [t for t, started in self._started.items() if now - started > older_than]


@dataclass(frozen=True)
class AimdSettings:
    increase: int = 1  # added after a window of successes as large as the limit
    decrease: float = 0.5  # the limit is multiplied by this on trouble
    cooldown: float = 1.0  # seconds between two decreases
    window: float = 10.0  # seconds of outcomes behind the error rate
    error_rate: float = 0.2  # failures / outcomes in the window above which failures are trouble
    min_samples: int = 20  # outcomes the window needs before its error rate counts

    def __post_init__(self) -> None:
        if self.increase < 1 or not 0 < self.decrease < 1 or self.cooldown < 0:
            raise FlowError(f"unusable AIMD settings: {self}")
        if self.window <= 0 or not 0 <= self.error_rate < 1 or self.min_samples < 1:
            raise FlowError(f"unusable AIMD settings: {self}")


class Aimd:
    """The adaptive in-flight limit of one subscriber, in [1, max_limit]."""

    def __init__(
        self,
        max_limit: int,
        settings: AimdSettings | None = None,
        clock: Clock = time.monotonic,
        initial: int | None = None,
    ) -> None:
        if max_limit < 1:
            raise FlowError(f"max_limit must be at least 1, not {max_limit}")
        self.max_limit = max_limit
        self.settings = settings or AimdSettings()
        self._clock = clock
        self.limit = max(1, min(max_limit, max_limit if initial is None else initial))
        self._successes = 0
        self._last_decrease = -math.inf
        self._errors = _Window(self.settings.window)

    @property
    def error_rate(self) -> float:
        return self._errors.rate(self._clock())

    def record(self, signal: Signal) -> int:
        """Account one finished task; returns the limit after it."""
        now = self._clock()
        failed = signal is not Signal.SUCCESS
        self._errors.add(now, failed)
        s = self.settings
        over = self._errors.total(now) >= s.min_samples and self._errors.rate(now) > s.error_rate
        if signal in TROUBLE or (failed and over):
            if now - self._last_decrease >= s.cooldown:
                self.limit = max(1, math.floor(self.limit * s.decrease))
                self._last_decrease = now
            self._successes = 0
        elif not failed and not over:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit = min(self.max_limit, self.limit + s.increase)
                self._successes = 0
        return self.limit


class _Window:
    """Outcome and failure counts over the last ``span`` seconds, in ten slots: bounded memory
    at any throughput, at the price of a tenth of the span in precision."""

    def __init__(self, span: float) -> None:
        self._slot = span / 10
        self._slots: deque[list[float]] = deque()  # [slot start, outcomes, failures]

    def add(self, now: float, failed: bool) -> None:
        start = math.floor(now / self._slot) * self._slot
        if not self._slots or self._slots[-1][0] < start:
            self._slots.append([start, 0, 0])
        self._slots[-1][1] += 1
        self._slots[-1][2] += failed

    def total(self, now: float) -> int:
        self._expire(now)
        return int(sum(slot[1] for slot in self._slots))

    def rate(self, now: float) -> float:
        total = self.total(now)
        return 0.0 if not total else sum(slot[2] for slot in self._slots) / total

    def _expire(self, now: float) -> None:
        while self._slots and self._slots[0][0] <= now - 10 * self._slot:
            self._slots.popleft()
