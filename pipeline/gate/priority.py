"""Priority lanes: high before normal before low, without starving the lower lanes.

Strict priority alone lets a steady stream of high-priority work hold normal and low work back
forever, which a backlog-bounded system cannot afford (their partitions would fill the retention
window). So :class:`LanePicker` is strict except that a lane passed over ``every - 1`` times in a
row while it had work is served next. With every lane busy and ``every`` = 10, high gets 8 of 10
dispatches and normal and low one each; with only normal and low busy, normal gets 9 and low 1.
A waiting lane is never passed over more than ``every`` times in a row (two lanes owed a turn at
the same pick go in priority order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from pipeline.gate.errors import FlowError

__all__ = ["LANES", "Lane", "LanePicker", "strict_lane"]

Lane = Literal["high", "normal", "low"]
LANES: tuple[Lane, ...] = get_args(Lane)  # highest first, as in SubscriberSpec.priority


def strict_lane(available: Mapping[Lane, bool]) -> Lane | None:
    """The highest lane with work, or None."""
    return next((lane for lane in LANES if available.get(lane, False)), None)


class LanePicker:
    """Strict priority with a guaranteed turn for a lane that has waited ``every - 1`` picks."""

    def __init__(self, every: int = 10) -> None:
        if every < len(LANES):
            raise FlowError(f"anti-starvation period must be at least {len(LANES)}, not {every}")
        self.every = every
        self._skipped: dict[Lane, int] = dict.fromkeys(LANES, 0)

    def next_lane(self, available: Mapping[Lane, bool]) -> Lane | None:
        """The lane to dispatch from next, given which lanes have work; None if none has."""
        waiting = [lane for lane in LANES if available.get(lane, False)]
        if not waiting:
            return None
        owed = [lane for lane in waiting if self._skipped[lane] >= self.every - 1]
        chosen = max(owed, key=lambda lane: self._skipped[lane]) if owed else waiting[0]
        for lane in LANES:
            self._skipped[lane] = self._skipped[lane] + 1 if lane in waiting else 0
        self._skipped[chosen] = 0
        return chosen
