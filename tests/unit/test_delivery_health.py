"""Probe results to hold and release: two failures in a row hold, the first success releases."""

from __future__ import annotations

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from pipeline.agents.delivery_health import (
    GROUP_ID_NOT_FOUND,
    Change,
    HealthState,
    assigned_topics,
)


def test_two_consecutive_failures_mark_a_target_down_and_one_success_up() -> None:
    state = HealthState()
    assert state.healthy
    assert state.observe(False) is None  # one failure is not an outage
    assert state.observe(True) is None
    assert state.observe(False) is None
    assert state.observe(False) is Change.DOWN
    assert not state.healthy
    assert state.observe(False) is None  # said once, not at every failed probe
    assert state.observe(True) is Change.UP
    assert state.healthy
    assert state.failures == 0
    assert state.observe(True) is None


def test_threshold_is_configurable_and_must_be_positive() -> None:
    state = HealthState(failures=1)
    assert state.observe(False) is Change.DOWN
    with pytest.raises(ValueError, match="at least 1"):
        HealthState(failures=0)


def _member(*topics: str, empty: bool = False) -> dict[str, object]:
    """A described member as aiokafka's ``to_object()`` gives it: the assignment is the
    consumer protocol's bytes (empty before the member's first assignment)."""
    parts = [(t, [0, 1]) for t in topics]
    raw = b"" if empty else ConsumerProtocolMemberAssignment(0, parts, b"").encode()
    return {"member_id": "m", "member_assignment": raw}


def test_assigned_topics_are_those_some_member_holds_a_partition_of() -> None:
    members = [
        _member("ns.exec.a", "ns.exec.b"),
        _member(),
        _member(empty=True),
        _member("ns.exec.a"),
    ]
    assert assigned_topics({"error_code": 0, "members": members}) == {"ns.exec.a", "ns.exec.b"}
    assert assigned_topics({"error_code": 0, "members": []}) == set()


def test_a_topic_listed_without_partitions_is_not_assigned() -> None:
    raw = ConsumerProtocolMemberAssignment(0, [("ns.exec.a", [])], b"").encode()
    group = {"error_code": 0, "members": [{"member_assignment": raw}]}
    assert assigned_topics(group) == set()


def test_a_group_never_joined_has_no_members_but_a_coordinator_error_has_no_verdict() -> None:
    assert assigned_topics({"error_code": GROUP_ID_NOT_FOUND, "members": []}) == set()
    assert assigned_topics({"error_code": 16, "members": []}) is None  # NOT_COORDINATOR
    assert assigned_topics({"error_code": 14, "members": []}) is None  # loading
