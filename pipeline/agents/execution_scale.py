"""Handler concurrency between a subscriber's ``concurrency.min`` and ``.max``, on backlog.

Every :data:`TICK_S` the controller looks at the gate: tasks waiting while every slot it allows is
busy means the handler keeps up no longer, so one more slot; no task waiting for
:data:`IDLE_S` means a slot can go. One step at a time, so a burst does not throw the subscriber
from min to max before it shows whether more concurrency helps, and going down is slower than
going up (a slot costs little; starving a burst costs latency). A limit reached through another
cap (``max_in_flight``, the rate) is not the controller's business: it only grows when its own
limit is the one in the way.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.errors import MSMError

__all__ = ["IDLE_S", "TICK_S", "Autoscaler"]

TICK_S = 1.0
IDLE_S = 10.0


class Autoscaler:
    """The concurrency limit; call :meth:`tick` about every :data:`TICK_S` with the gate's state."""

    def __init__(
        self, minimum: int, maximum: int, clock: Callable[[], float], *, idle_s: float = IDLE_S
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise MSMError(f"concurrency bounds must satisfy 1 <= min <= max: {minimum}, {maximum}")
        self.minimum, self.maximum = minimum, maximum
        self.limit = minimum
        self._clock = clock
        self._idle_s = idle_s
        self._busy_at = clock()  # the last time tasks were waiting

    def tick(self, backlog: int, in_flight: int) -> int:
        """The limit after one look at ``backlog`` (tasks waiting) and ``in_flight``."""
        now = self._clock()
        if backlog > 0:
            self._busy_at = now
            if in_flight >= self.limit and self.limit < self.maximum:
                self.limit += 1
        elif now - self._busy_at >= self._idle_s and self.limit > self.minimum:
            self.limit -= 1
            self._busy_at = now  # the next step down waits a whole idle period again
        return self.limit
