"""Priority lanes: strict order with a guaranteed turn for a lane kept waiting."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.gate import LANES, FlowError, Lane, LanePicker, strict_lane

ALL: dict[Lane, bool] = {"high": True, "normal": True, "low": True}


def test_lanes_match_the_topologys_priorities() -> None:
    assert LANES == ("high", "normal", "low")


@pytest.mark.parametrize(
    ("available", "lane"),
    [
        ({}, None),
        ({"high": False, "normal": False, "low": False}, None),
        ({"low": True}, "low"),
        ({"normal": True, "low": True}, "normal"),
        (ALL, "high"),
    ],
)
def test_strict_lane(available: dict[Lane, bool], lane: Lane | None) -> None:
    assert strict_lane(available) == lane


def test_a_lone_lane_gets_every_pick() -> None:
    for lane in LANES:
        picker = LanePicker()
        assert {picker.next_lane({lane: True}) for _ in range(50)} == {lane}
    assert LanePicker().next_lane({}) is None


def test_shares_under_full_contention() -> None:
    picker = LanePicker(every=10)
    picks = Counter(picker.next_lane(ALL) for _ in range(1000))
    assert picks == Counter({"high": 801, "normal": 100, "low": 99})
    picker = LanePicker(every=10)
    picks = Counter(picker.next_lane({"normal": True, "low": True}) for _ in range(1000))
    assert picks == Counter({"normal": 900, "low": 100})


def test_high_comes_first_until_a_lower_lane_is_owed() -> None:
    picker = LanePicker(every=10)
    picks = [picker.next_lane(ALL) for _ in range(11)]
    assert picks == ["high"] * 9 + ["normal", "low"]


def test_waiting_resets_when_a_lane_runs_dry() -> None:
    picker = LanePicker(every=4)
    assert [picker.next_lane(ALL) for _ in range(2)] == ["high", "high"]
    picker.next_lane({"high": True})  # normal and low have nothing: they are not starving
    assert [picker.next_lane(ALL) for _ in range(3)] == ["high", "high", "high"]
    assert picker.next_lane(ALL) == "normal"


def test_the_period_leaves_room_for_every_lane() -> None:
    with pytest.raises(FlowError):
        LanePicker(every=2)


@given(
    every=st.integers(3, 20),
    rounds=st.lists(st.fixed_dictionaries({lane: st.booleans() for lane in LANES}), max_size=300),
)
def test_no_waiting_lane_is_passed_over_more_than_every_times(
    every: int, rounds: list[dict[Lane, bool]]
) -> None:
    picker = LanePicker(every=every)
    passed_over = dict.fromkeys(LANES, 0)
    for available in rounds:
        chosen = picker.next_lane(available)
        assert (chosen is None) == (not any(available.values()))
        assert chosen is None or available[chosen]
        for lane in LANES:
            passed_over[lane] = passed_over[lane] + 1 if available[lane] and lane != chosen else 0
            assert passed_over[lane] <= every
