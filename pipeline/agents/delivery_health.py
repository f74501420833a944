"""Is a subscriber's target there? The rule that turns probe results into hold and release.

One failed probe is not an outage (a slow GC, a rebalance that briefly leaves no partition
assigned), so a target is declared unhealthy only after ``failures`` consecutive failures, and
healthy again at the first success: deliveries resume as soon as one instance answers. A target
starts healthy, so a worker that starts before its endpoint delivers as soon as it can, and
holds only once the target has been seen missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

__all__ = ["Change", "HealthState", "assigned_topics"]

FAILURES_TO_HOLD = 2


class Change(StrEnum):
    DOWN = "down"
    UP = "up"


class HealthState:
    """Consecutive probe results of one target; :meth:`observe` says when health changed."""

    def __init__(self, failures: int = FAILURES_TO_HOLD) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        self.failures_to_hold = failures
        self.healthy = True
        self.failures = 0  # consecutive

    def observe(self, ok: bool) -> Change | None:
        if ok:
            self.failures = 0
            if not self.healthy:
                self.healthy = True
                return Change.UP
            return None
        self.failures += 1
        if self.healthy and self.failures >= self.failures_to_hold:
            self.healthy = False
            return Change.DOWN
        return None


def assigned_topics(members: Iterable[Any]) -> set[str]:
    """Topics some member of a consumer group has a partition of, from the ``members`` of
    confluent-kafka's ``ConsumerGroupDescription``."""
    topics: set[str] = set()
    for member in members:
        assignment = getattr(member, "assignment", None)
        for tp in getattr(assignment, "topic_partitions", None) or ():
            topics.add(tp.topic)
    return topics
