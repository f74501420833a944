"""Cron schedules: which ticks exist, which to fire now, and their deterministic event ids.

Several workers, one firing. ``<ns>.schedules`` has ONE partition, keyed by schedule name and
compacted, holding each schedule's last fired tick. The cron agent consumes it in a consumer
group, so only the worker that owns partition 0 fires; on assignment it reads the partition to
its end to learn every ``last_fired`` before firing anything. For each tick of
:func:`plan_ticks` it produces the tick event (due now, so to ``<ns>.ready``) with id
:func:`tick_id`, waits for the ack, and only THEN writes the tick to ``<ns>.schedules``.
Writing after producing makes firing at-least-once: a crash between the two re-fires that tick
on restart, whereas writing first would lose it. The repeat (and ticks fired twice while a
rebalance moves the partition) carry the same id, derived from schedule name and tick instant,
so downstream dedup by event id (execution's completed-task window) runs the work once.

Ticks are computed in the schedule's time zone, the way cronie handles clock changes (croniter's
own zone handling is unreliable across DST, so it only enumerates naive wall-clock times here):

* a wall time skipped when clocks go forward fires shifted by the gap (02:30 -> 03:30) for
  fixed-time schedules; schedules with ``*`` in the minute or hour field skip it;
* a wall time that happens twice when clocks go back fires once (the first time) for fixed-time
  schedules, and both times for schedules with ``*`` in the minute or hour field;
* ticks that land on the same instant fire once.

Ticks are returned as UTC datetimes: comparing datetimes that share a zone ignores ``fold``.
Clock changes are assumed shorter than :data:`_NEAR` and further apart than it (true of DST).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from pipeline.agents.scheduling.errors import SchedulingError, UnsupportedCronError
from pipeline.topology.models import ScheduleSpec

__all__ = [
    "DEFAULT_GRACE",
    "latest_tick",
    "next_tick",
    "plan_ticks",
    "tick_id",
    "ticks_between",
]

DEFAULT_GRACE = timedelta(seconds=60)
MAX_TICKS = 10_000
HORIZON = timedelta(days=5 * 366)  # how far next_tick/latest_tick look
TICK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:msm:schedule-tick")  # never change it
_NEAR = timedelta(hours=3)
_SECOND = timedelta(seconds=1)
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class _Cron:
    expr: str
    wildcard: bool  # '*' in the minute or hour field: fires by elapsed time, not by the clock
    tz: ZoneInfo

    def walls(self, start: datetime, forward: bool) -> Iterator[datetime]:
        """Naive wall-clock matches strictly after (or before) ``start``."""
        it = croniter(self.expr, start.replace(microsecond=0))
        step = it.get_next if forward else it.get_prev
        while True:
            try:
                wall: datetime = step(datetime)
            except CroniterBadDateError:  # no further match (e.g. 30 February)
                return
            yield wall

    def wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def margin(self, instant: datetime) -> timedelta:
        """How far the wall clock moves against real time around ``instant``: 0 away from DST."""
        here = self.wall(instant) - instant.replace(tzinfo=None)
        around = (
            self.wall(instant + d) - (instant + d).replace(tzinfo=None) for d in (-_NEAR, _NEAR)
        )
        return max(abs(offset - here) for offset in around)

    def instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants a matching wall time fires at, by the DST rules above."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if self.wall(first) != wall:  # skipped by the clock: fold=0 lands after the gap
            return [] if self.wildcard else [first]
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        return [first, second] if self.wildcard and second != first else [first]


@functools.lru_cache(maxsize=256)
def _parse(cron: str, timezone: str) -> _Cron:
    expr = _ALIASES.get(cron.strip().lower(), cron.strip())
    fields = expr.split()
    if any(f.lower().startswith("r") for f in fields):
        raise UnsupportedCronError(
            f"cron {cron!r} uses R (random): workers would disagree on its ticks"
        )
    wildcard = fields[0].startswith("*") or fields[1].startswith("*")
    return _Cron(expr, wildcard, ZoneInfo(timezone))


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise SchedulingError(f"{what} must be a time-zone aware datetime, got {value!r}")
    return value.astimezone(UTC)


def ticks_between(
    spec: ScheduleSpec, after: datetime, until: datetime, *, limit: int = MAX_TICKS
) -> list[datetime]:
    """Ticks in ``(after, until]``, ascending, as UTC; raises if there are more than ``limit``."""
    a, b = _utc(after, "after"), _utc(until, "until")
    if b <= a:
        return []
    cron = _parse(spec.cron, spec.timezone)
    hi = cron.wall(b) + cron.margin(b)
    found: set[datetime] = set()
    for wall in cron.walls(cron.wall(a) - cron.margin(a) - _SECOND, forward=True):
        if wall > hi:
            break
        found.update(t for t in cron.instants(wall) if a < t <= b)
        if len(found) > limit:
            raise SchedulingError(f"schedule {spec.name!r} has over {limit} ticks in {a}..{b}")
    return sorted(found)


def next_tick(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first tick after ``after`` (when the agent should wake), None within the horizon."""
    a = _utc(after, "after")
    cron = _parse(spec.cron, spec.timezone)
    start = cron.wall(a)
    best: datetime | None = None
    for wall in cron.walls(start - cron.margin(a) - _SECOND, forward=True):
        if wall > start + HORIZON:
            break
        # Past best's wall by more than the local clock change, nothing can precede it.
        if best is not None and wall > cron.wall(best) + cron.margin(best):
            break
        for t in cron.instants(wall):
            if t > a and (best is None or t < best):
                best = t
    return best


def latest_tick(spec: ScheduleSpec, after: datetime | None, until: datetime) -> datetime | None:
    """The last tick in ``(after, until]`` (``after`` None: within the horizon), else None."""
    b = _utc(until, "until")
    a = None if after is None else _utc(after, "after")
    cron = _parse(spec.cron, spec.timezone)
    stop = cron.wall(b) - HORIZON if a is None else cron.wall(a) - cron.margin(a)
    best: datetime | None = None
    for wall in cron.walls(cron.wall(b) + cron.margin(b) + _SECOND, forward=False):
        if wall < stop:
            break
        # Before best's wall by more than the local clock change, nothing can follow it.
        if best is not None and wall < cron.wall(best) - cron.margin(best):
            break
        for t in cron.instants(wall):
            if t <= b and (a is None or t > a) and (best is None or t > best):
                best = t
    return best


def plan_ticks(
    spec: ScheduleSpec,
    last_fired: datetime | None,
    now: datetime,
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> list[datetime]:
    """The ticks to fire at ``now``, ascending, none at or before ``last_fired``.

    Always the ticks in ``(max(last_fired, now - grace), now]``: on time, or late by less than
    ``grace`` (a poll interval, a short restart). ``missed="fire_once"`` adds the latest tick in
    ``(last_fired, now - grace]``, if any, once: a nightly job missed during an outage runs on
    return, but a week's worth of ticks do not pile up. Without ``last_fired`` nothing counts
    as missed: the schedule never fired, so there is no outage to catch up on.
    """
    n = _utc(now, "now")
    window = n - grace
    last = None if last_fired is None else _utc(last_fired, "last_fired")
    ticks = ticks_between(spec, window if last is None else max(last, window), n)
    if spec.missed == "fire_once" and last is not None and last < window:
        missed = latest_tick(spec, last, window)
        if missed is not None:
            ticks.insert(0, missed)
    return ticks


def tick_id(schedule_name: str, tick: datetime) -> str:
    """The event id of a tick: the same on every worker and every retry, so dedup can see it."""
    iso = _utc(tick, "tick").isoformat().replace("+00:00", "Z")
    return str(uuid.uuid5(TICK_NAMESPACE, f"schedule:{schedule_name}:{iso}"))
