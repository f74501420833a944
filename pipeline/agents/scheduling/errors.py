"""Errors of the scheduler's pure logic (tiers, timers, cron)."""

from __future__ import annotations

from pipeline.errors import ConfigError, MSMError


class SchedulingError(MSMError):
    """The scheduler's logic was called against its contract (a caller bug, not bad data)."""


class InvalidTiersError(SchedulingError, ConfigError):
    """Delay tiers that cannot route events: empty, not positive, not whole milliseconds."""


class OffsetOrderError(SchedulingError):
    """Offsets of a partition were taken out of order: the consumer seeked without a reset."""


class UnsupportedCronError(SchedulingError, ConfigError):
    """A cron expression whose ticks would differ between workers (croniter's random ``R``)."""
