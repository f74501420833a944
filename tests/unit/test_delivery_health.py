"""Probe results to hold and release: two failures in a row hold, the first success releases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.agents.delivery_health import Change, HealthState, assigned_topics


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


def _member(*topics: str | None) -> SimpleNamespace:
    if topics == (None,):
        return SimpleNamespace(assignment=None)
    parts = [SimpleNamespace(topic=t, partition=0) for t in topics]
    return SimpleNamespace(assignment=SimpleNamespace(topic_partitions=parts))


def test_assigned_topics_are_those_some_member_holds_a_partition_of() -> None:
    members = [_member("ns.exec.a", "ns.exec.b"), _member(), _member(None), _member("ns.exec.a")]
    assert assigned_topics(members) == {"ns.exec.a", "ns.exec.b"}
    assert assigned_topics([]) == set()
