"""A subscriber's ``rate_limit``: a token bucket per worker, the rate shared across workers.

Global limit without a shared counter: each worker's bucket refills at the subscriber's rate
times its share of the gated topic's partitions (owned / total, recomputed on every rebalance
by :class:`~pipeline.gate.pump.Pump`). Summed over the group that is ``rate``, whatever the
number of workers, with no coordination on the hot path; the bursts add up the same way.

Within 10 % across all workers holds while every partition has work. It errs low, never high: a
worker whose partitions are idle leaves its share unused (keys spread evenly make this rare).
During a rebalance, for a session timeout at most, old and new shares overlap; each bucket
starts full, so a rebalance can admit one extra ``burst``.

Clocks are explicit (``now``, monotonic seconds) so tests simulate time instead of sleeping.
"""

from __future__ import annotations

import math

from pipeline.gate.errors import FlowError
from pipeline.topology.durations import Rate

__all__ = ["TokenBucket", "default_burst", "share", "share_burst"]

# Refills are floating point: a token due "now" may be 1e-16 short. Counting it as there keeps
# a caller that sleeps delay_until_available() and retries from spinning on near-zero delays.
_EPSILON = 1e-9


def share(rate: Rate, members: int) -> Rate:
    """One member's part of ``rate`` among ``members``: 500/s over 3 members is 500/3s, exact."""
    if members < 1:
        raise FlowError(f"a rate is shared among at least 1 member, not {members}")
    return Rate(count=rate.count, per=rate.per * members)


def share_burst(burst: float, members: int) -> float:
    """One member's part of the burst; at least one token, or nothing would ever pass."""
    if members < 1:
        raise FlowError(f"a burst is shared among at least 1 member, not {members}")
    return max(1.0, burst / members)


def default_burst(rate: Rate) -> float:
    """A tenth of a second's worth of the rate, at least 1: smooths dispatch without letting
    a burst be more than ~1 % of what a 10 s window admits."""
    return max(1.0, rate.per_second / 10)


class TokenBucket:
    """Refills at ``rate``; holds at most ``burst`` tokens; starts full."""

    def __init__(self, rate: Rate, burst: float, now: float) -> None:
        if burst < 1:
            raise FlowError(f"a bucket must hold at least one token, not {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._per_second = rate.per_second
        self._tokens = self.burst
        self._updated = now

    @property
    def tokens(self) -> float:
        return self._tokens

    def try_acquire(self, n: float, now: float) -> bool:
        """Take ``n`` tokens if they are there; False (taking none) otherwise."""
        self._refill(now, n)
        if self._tokens >= n - _EPSILON:
            self._tokens -= n
            return True
        return False

    def delay_until_available(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens will be there (0.0 if they are); takes nothing, so the
        caller pauses its partitions this long and then calls :meth:`try_acquire`."""
        self._refill(now, n)
        missing = n - self._tokens
        return 0.0 if missing <= _EPSILON else missing / self._per_second

    def set_rate(self, rate: Rate, burst: float, now: float) -> None:
        """A new share after a rebalance; tokens already earned are kept, up to the new burst."""
        self._refill(now, 1)
        if burst < 1:
            raise FlowError(f"a bucket must hold at least one token, not {burst}")
        self.rate, self.burst, self._per_second = rate, float(burst), rate.per_second
        self._tokens = min(self._tokens, self.burst)

    def _refill(self, now: float, n: float) -> None:
        if n <= 0 or n > self.burst or math.isnan(n):
            raise FlowError(f"a bucket of {self.burst:g} tokens cannot give {n}")
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that steps back adds nothing instead of taking tokens away
            self._tokens = min(self.burst, self._tokens + elapsed * self._per_second)
            self._updated = now
