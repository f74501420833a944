"""Is a subscriber's target there? The rule that turns probe results into hold and release.

One failed probe is not an outage (a slow GC, a rebalance that briefly leaves no partition
assigned), so a target is declared unhealthy only after ``failures`` consecutive failures, and
healthy again at the first success: deliveries resume as soon as one instance answers. A target
starts healthy, so a worker that starts before its endpoint delivers as soon as it can, and
holds only once the target has been seen missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

__all__ = ["Change", "HealthState", "assigned_topics"]

FAILURES_TO_HOLD = 2
GROUP_ID_NOT_FOUND = 69  # a group no worker ever joined: no members, not an error


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


def assigned_topics(group: Mapping[str, Any]) -> set[str] | None:
    """Topics some member of a described consumer group holds a partition of; None when the
    describe failed (no verdict). ``group`` is one group of a DescribeGroups response as
    aiokafka's ``to_object()`` gives it; members' assignments are the consumer protocol's bytes.
    """
    if group.get("error_code", 0) not in (0, GROUP_ID_NOT_FOUND):
        return None
    topics: set[str] = set()
    for member in group.get("members") or ():
        raw = member.get("member_assignment")
        if raw:
            assignment = ConsumerProtocolMemberAssignment.decode(raw)
            topics.update(topic for topic, partitions in assignment.assignment if partitions)
    return topics
