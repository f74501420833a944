"""How fast a source is read, from how far behind its events' subscribers are.

Flow control reaching back to the source: the subscribers' backlog (events in Kafka not yet
handled, see :mod:`pipeline.cdc.backlog`) sets a factor of the source's ``rate_limit``. Full
speed up to ``lag.slow``, falling linearly to :data:`FLOOR` of it at ``lag.pause``, stopped at
``lag.pause`` and until the backlog is back under ``lag.slow`` (hysteresis, so a backlog
hovering at the limit does not flap the source on and off). Pure, with an explicit clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.topology.cdc import CdcLagSpec
from pipeline.topology.durations import Rate

FLOOR = 0.05  # the slowest pace short of a pause


@dataclass(frozen=True, slots=True)
class Pace:
    factor: float  # of rate_limit; 0 while paused
    paused: bool
    backlog: int | None  # None: not measured (Kafka did not answer): the last pace holds

    @property
    def state(self) -> str:
        return "paused" if self.paused else ("full" if self.factor >= 1 else "slowed")


FULL = Pace(1.0, False, None)


def decide(backlog: int, lag: CdcLagSpec, previous: Pace = FULL) -> Pace:
    if backlog >= lag.pause or (previous.paused and backlog > lag.slow):
        return Pace(0.0, True, backlog)
    if backlog <= lag.slow:
        return Pace(1.0, False, backlog)
    factor = (lag.pause - backlog) / (lag.pause - lag.slow)
    return Pace(max(FLOOR, factor), False, backlog)


class Pacer:
    """Spaces reads so that ``changes`` per second stay within ``rate`` times the pace."""

    def __init__(self, rate: Rate) -> None:
        self.rate_per_s = rate.per_second
        self._next_at = 0.0

    def wait_s(self, now: float) -> float:
        """How long to wait before the next read."""
        return max(0.0, self._next_at - now)

    def took(self, changes: int, pace: Pace, now: float) -> None:
        """``changes`` were read at ``now``: the next read waits their share of the rate."""
        if changes <= 0 or pace.paused:
            return
        start = max(now, self._next_at)
        self._next_at = start + changes / (self.rate_per_s * pace.factor)
