"""The scheduler layer's pure logic: delay tiers, in-memory timers, commit positions, cron.

No Kafka and no faust here, so the scheduler agent stays a thin loop of I/O around these and
each rule (never early, never commit past held work, fire each tick once) is tested alone.
"""

from __future__ import annotations

from pipeline.agents.scheduling.cron import (
    DEFAULT_GRACE,
    latest_tick,
    next_tick,
    plan_ticks,
    tick_id,
    ticks_between,
)
from pipeline.agents.scheduling.errors import (
    InvalidTiersError,
    OffsetOrderError,
    SchedulingError,
    UnsupportedCronError,
)
from pipeline.agents.scheduling.tiers import (
    HOLD,
    READY,
    Hold,
    Ready,
    Route,
    Tier,
    due_ms,
    route,
    tiers_ms,
)
from pipeline.agents.scheduling.timers import CommitTracker, DueQueue

__all__ = [
    "DEFAULT_GRACE",
    "HOLD",
    "READY",
    "CommitTracker",
    "DueQueue",
    "Hold",
    "InvalidTiersError",
    "OffsetOrderError",
    "Ready",
    "Route",
    "SchedulingError",
    "Tier",
    "UnsupportedCronError",
    "due_ms",
    "latest_tick",
    "next_tick",
    "plan_ticks",
    "route",
    "tick_id",
    "ticks_between",
    "tiers_ms",
]
