"""Pacing a CDC source by its subscribers' backlog: full, slowed, paused with hysteresis."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.cdc.pace import FLOOR, FULL, Pace, Pacer, decide
from pipeline.topology.cdc import CdcLagSpec
from pipeline.topology.durations import Rate

LAG = CdcLagSpec(slow=1_000, pause=10_000)


@pytest.mark.parametrize(
    ("backlog", "factor", "state"),
    [(0, 1.0, "full"), (1_000, 1.0, "full"), (5_500, 0.5, "slowed"), (9_999, FLOOR, "slowed")],
)
def test_the_pace_falls_linearly_between_slow_and_pause(
    backlog: int, factor: float, state: str
) -> None:
    pace = decide(backlog, LAG)
    assert pace.factor == pytest.approx(factor)
    assert pace.state == state
    assert not pace.paused
    assert pace.backlog == backlog


def test_a_pause_holds_until_the_backlog_is_back_under_slow() -> None:
    paused = decide(10_000, LAG)
    assert paused.paused
    assert paused.factor == 0
    assert paused.state == "paused"
    assert decide(5_000, LAG, paused).paused  # between the limits: still paused
    assert decide(1_001, LAG, paused).paused
    resumed = decide(1_000, LAG, paused)
    assert not resumed.paused
    assert resumed.factor == 1.0


def test_the_pacer_spaces_reads_by_the_rate_times_the_pace() -> None:
    pacer = Pacer(Rate(count=1_000, per=timedelta(seconds=1)))
    assert pacer.wait_s(0.0) == 0
    pacer.took(500, FULL, now=0.0)
    assert pacer.wait_s(0.0) == pytest.approx(0.5)
    pacer.took(100, Pace(0.5, False, 5_500), now=0.5)  # half speed: 100 changes take 0.2 s
    assert pacer.wait_s(0.5) == pytest.approx(0.2)
    assert pacer.wait_s(10.0) == 0
    pacer.took(100, Pace(0.0, True, 20_000), now=10.0)  # paused reads are not spaced here
    assert pacer.wait_s(10.0) == 0
