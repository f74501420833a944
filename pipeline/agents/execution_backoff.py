"""Back-off of a handler subscriber in trouble: its gate's adaptive limit follows handler results.

Delivery feeds an :class:`~pipeline.gate.capacity.Aimd` with each HTTP answer; this is the same
for handler subscribers, fed with each handler run: a timeout (the handler, or what it calls,
is overloaded; a sync one even leaves its thread running) and a ``Retry`` (the handler saying
"not now", its 429) halve the runs allowed at once, other failures count toward the error
rate, successes let the limit climb back.

The limit ranges up to this worker's share of ``max_in_flight``, re-read on every result since
a rebalance changes it, but never above ``concurrency.max``: the autoscaled concurrency never
goes higher, so a limit above it would take halvings to bite and a long climb to recover while
the gate ran unchanged. A limit at its top follows the top when the share changes, so a
rebalance alone never looks like trouble.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pipeline.agents.execution_handlers import HandlerTimeout
from pipeline.gate.capacity import Aimd, AimdSettings, Signal
from pipeline.handler import Retry

__all__ = ["Backoff", "Gate", "signal_for"]

log = logging.getLogger(__name__)


class Gate(Protocol):
    """What back-off needs of a :class:`~pipeline.gate.pump.Pump`."""

    adaptive: int | None

    def share(self, value: int) -> int: ...


def signal_for(failure: BaseException | None) -> Signal:
    """What one handler run (``None``: it succeeded) says about the subscriber's health."""
    if failure is None:
        return Signal.SUCCESS
    if isinstance(failure, HandlerTimeout):
        return Signal.TIMEOUT
    if isinstance(failure, Retry):
        return Signal.THROTTLED
    return Signal.ERROR


class Backoff:
    """One handler subscriber's adaptive limit in this worker, applied to its ``gate``."""

    def __init__(
        self,
        subscriber: str,
        max_in_flight: int,
        ceiling: int,
        gate: Gate,
        *,
        settings: AimdSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subscriber, self.max_in_flight, self.ceiling = subscriber, max_in_flight, ceiling
        self.gate = gate
        self.aimd = Aimd(self._top(), settings, clock)
        self.backed_off = False  # below half of its top, and not back at the top since

    def _top(self) -> int:
        return max(1, min(self.gate.share(self.max_in_flight), self.ceiling))

    def record(self, signal: Signal) -> int:
        """Account one handler run; the gate's adaptive limit after it."""
        aimd, top = self.aimd, self._top()
        if top != aimd.max_limit:
            at_top = aimd.limit >= aimd.max_limit
            aimd.max_limit = top
            aimd.limit = top if at_top else min(aimd.limit, top)
        limit = aimd.record(signal)
        self.gate.adaptive = limit
        if not self.backed_off and 2 * limit < top:
            self.backed_off = True
            log.info(
                "execution %s: backing off to %d handler run(s) at once, of %d "
                "(%s; error rate %.0f%%)",
                self.subscriber,
                limit,
                top,
                signal.value,
                100 * aimd.error_rate,
            )
        elif self.backed_off and limit >= top:
            self.backed_off = False
            log.info(
                "execution %s: recovered, back to %d handler run(s) at once", self.subscriber, limit
            )
        return limit
