"""Where a delayed event waits next: ready now, held in memory, or a delay tier.

A delay tier topic ``<ns>.delay.<t>`` holds each partition's head until its enqueue timestamp
(LogAppendTime, so monotonic per partition) plus ``t``; every record behind the head waits at
least as long, so holding only the head never delivers anything out of turn. When the head is
released it is routed again with :func:`route`, which picks the largest tier that still fits.

Why this is never early: only :data:`READY` forwards to ``<ns>.ready``, and only once
``deliver_at <= now``; :data:`HOLD` keeps the event in memory until ``deliver_at``. Tiers decide
how long to wait before looking again, never whether the event is due.

Why it is never (much) late: a tier is chosen only when ``t <= deliver_at - now``, and its
record is appended at or after ``now``, so each hop consumes at least ``t`` of the remaining
delay and ends by ``deliver_at`` (plus produce and consume latency). :func:`due_ms` also caps the
release at ``deliver_at``, so a broker clock running ahead of the worker cannot make it late.

Hops: the remaining delay shrinks by at least the chosen tier on every hop, so an event makes at
most ``remaining // largest`` hops in the largest tier plus ``ceil(t[i+1] / t[i]) - 1`` in each
smaller tier ``t[i]`` (29 for the default tiers, plus one hop a day in the 1d tier: a year costs
~394 small re-appends, spread over the year).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, TypeAlias

from pipeline.agents.scheduling.errors import InvalidTiersError

__all__ = ["HOLD", "READY", "Hold", "Ready", "Route", "Tier", "due_ms", "route", "tiers_ms"]

_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Ready:
    """Due now: forward to ``<ns>.ready``."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Due within the hold window: keep in memory (offset uncommitted) until ``deliver_at``."""


@dataclass(frozen=True, slots=True)
class Tier:
    """Wait in the delay tier of ``tier_ms`` milliseconds, then route again."""

    tier_ms: int


Route: TypeAlias = Ready | Hold | Tier
READY: Final = Ready()
HOLD: Final = Hold()


def tiers_ms(tiers: Iterable[timedelta]) -> tuple[int, ...]:
    """Tiers as ascending, distinct milliseconds, the form :func:`route` expects.

    Converted once at start-up so routing, which runs per event, does no validation.
    """
    out: set[int] = set()
    for tier in tiers:
        if tier <= timedelta(0) or tier % _MS:
            raise InvalidTiersError(f"delay tier {tier!r} is not a positive whole number of ms")
        out.add(tier // _MS)
    if not out:
        raise InvalidTiersError("at least one delay tier is needed")
    return tuple(sorted(out))


def route(deliver_at_ms: int, now_ms: int, tiers_ms: Sequence[int], hold_window_ms: int) -> Route:
    """Where an event due at ``deliver_at_ms`` goes at ``now_ms``.

    ``tiers_ms`` must be ascending (see :func:`tiers_ms`). A remaining delay shorter than the
    smallest tier is held in memory even above ``hold_window_ms``, since no tier fits it: the
    effective hold is ``max(hold_window_ms, smallest tier - 1ms)``.
    """
    remaining = deliver_at_ms - now_ms
    if remaining <= 0:
        return READY
    if remaining <= hold_window_ms:
        return HOLD
    fits = bisect_right(tiers_ms, remaining)
    if fits == 0:
        return HOLD
    return Tier(tiers_ms[fits - 1])


def due_ms(enqueue_ts_ms: int, tier_ms: int, deliver_at_ms: int | None = None) -> int:
    """When a tier may release (re-route) a record appended at ``enqueue_ts_ms``.

    ``enqueue_ts_ms + tier_ms``, capped at ``deliver_at_ms`` when given: with LogAppendTime the
    enqueue time is the broker's clock, and the cap keeps a broker clock ahead of the worker's
    from delaying an event past its due time. Releasing early is safe: release only re-routes.
    """
    due = enqueue_ts_ms + tier_ms
    return due if deliver_at_ms is None else min(due, deliver_at_ms)
