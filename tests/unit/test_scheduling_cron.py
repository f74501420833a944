"""Cron ticks across DST, missed-tick policies and deterministic tick ids."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.agents.scheduling import (
    SchedulingError,
    UnsupportedCronError,
    latest_tick,
    next_tick,
    plan_ticks,
    tick_id,
    ticks_between,
)
from pipeline.errors import ConfigError
from pipeline.topology.models import ScheduleSpec

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


def spec(cron: str, tz: str = "UTC", missed: Literal["skip", "fire_once"] = "skip") -> ScheduleSpec:
    return ScheduleSpec(
        name="job", event="maintenance.cleanup", cron=cron, timezone=tz, missed=missed
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def local(ticks: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).strftime("%m-%d %H:%M%z") for t in ticks]


def day_ticks(s: ScheduleSpec, tz: ZoneInfo, y: int, m: int, d: int) -> list[datetime]:
    """Ticks of one local calendar day."""
    start = datetime(y, m, d, tzinfo=tz).astimezone(UTC)
    end = (datetime(y, m, d, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
    return ticks_between(s, start - timedelta(microseconds=1), end - timedelta(microseconds=1))


def test_ticks_are_utc_and_after_is_exclusive_until_inclusive() -> None:
    ticks = ticks_between(spec("0 3 * * *"), utc(2024, 1, 1, 3), utc(2024, 1, 3, 3))
    assert ticks == [utc(2024, 1, 2, 3), utc(2024, 1, 3, 3)]
    assert all(t.tzinfo is UTC for t in ticks)


def test_berlin_spring_forward_fixed_time_fires_shifted_by_the_gap() -> None:
    # 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 does not exist that night.
    ticks = ticks_between(spec("30 2 * * *", "Europe/Berlin"), utc(2024, 3, 29), utc(2024, 4, 2))
    assert local(ticks, BERLIN) == [
        "03-29 02:30+0100",
        "03-30 02:30+0100",
        "03-31 03:30+0200",
        "04-01 02:30+0200",
    ]


def test_berlin_fall_back_fixed_time_fires_once() -> None:
    # 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice that night.
    ticks = ticks_between(spec("30 2 * * *", "Europe/Berlin"), utc(2024, 10, 25), utc(2024, 10, 29))
    assert local(ticks, BERLIN) == [
        "10-25 02:30+0200",
        "10-26 02:30+0200",
        "10-27 02:30+0200",
        "10-28 02:30+0100",
    ]


def test_berlin_hourly_has_23_and_25_ticks_on_dst_days() -> None:
    hourly = spec("0 * * * *", "Europe/Berlin")
    spring = day_ticks(hourly, BERLIN, 2024, 3, 31)
    autumn = day_ticks(hourly, BERLIN, 2024, 10, 27)
    assert len(spring) == 23
    assert "03-31 02:00+0100" not in local(spring, BERLIN)
    assert len(autumn) == 25
    assert local(autumn, BERLIN)[2:4] == ["10-27 02:00+0200", "10-27 02:00+0100"]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(autumn))


def test_berlin_every_30_minutes_runs_through_the_repeated_hour() -> None:
    ticks = ticks_between(
        spec("*/30 * * * *", "Europe/Berlin"), utc(2024, 10, 26, 23, 45), utc(2024, 10, 27, 2)
    )
    assert local(ticks, BERLIN) == [
        "10-27 02:00+0200",
        "10-27 02:30+0200",
        "10-27 02:00+0100",
        "10-27 02:30+0100",
        "10-27 03:00+0100",
    ]


def test_new_york_dst_days() -> None:
    # 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.
    fixed = spec("30 2 * * *", "America/New_York")
    assert local(day_ticks(fixed, NEW_YORK, 2024, 3, 10), NEW_YORK) == ["03-10 03:30-0400"]
    once = spec("30 1 * * *", "America/New_York")
    assert local(day_ticks(once, NEW_YORK, 2024, 11, 3), NEW_YORK) == ["11-03 01:30-0400"]
    hourly = spec("0 * * * *", "America/New_York")
    assert len(day_ticks(hourly, NEW_YORK, 2024, 3, 10)) == 23
    assert len(day_ticks(hourly, NEW_YORK, 2024, 11, 3)) == 25


@settings(max_examples=100, deadline=None)
@given(
    start=st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
    span=st.integers(1, 3 * 24 * 60),
    cron=st.sampled_from(["*/7 * * * *", "0 * * * *", "15 3 * * 1-5", "0 0 L * *", "@daily"]),
)
def test_utc_ticks_match_croniter(start: datetime, span: int, cron: str) -> None:
    after = start.replace(tzinfo=UTC)
    until = after + span * MINUTE
    it = croniter(cron, after)
    expected: list[datetime] = []
    while (t := it.get_next(datetime)) <= until:
        expected.append(t)
    assert ticks_between(spec(cron), after, until) == expected


# Around Berlin's and New York's clock changes of 2024, where splitting a range could go wrong.
near_dst = st.sampled_from(
    [utc(2024, 3, 31, 1), utc(2024, 10, 27, 1), utc(2024, 3, 10, 7), utc(2024, 11, 3, 6)]
).flatmap(lambda t: st.integers(-5 * 3600, 5 * 3600).map(lambda s: t + timedelta(seconds=s)))


@settings(max_examples=150, deadline=None)
@given(
    a=near_dst,
    cuts=st.lists(st.integers(0, 6 * 3600), min_size=2, max_size=2),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York"]),
    cron=st.sampled_from(["*/20 * * * *", "30 2 * * *", "30 1 * * *", "0 */2 * * *", "5 3 * * *"]),
)
def test_ticks_split_at_any_point_add_up(a: datetime, cuts: list[int], tz: str, cron: str) -> None:
    s = spec(cron, tz)
    b, c = (a + timedelta(seconds=x) for x in sorted(cuts))
    whole = ticks_between(s, a, c)
    assert whole == ticks_between(s, a, b) + ticks_between(s, b, c)
    assert whole == sorted(set(whole))
    assert all(a < t <= c for t in whole)
    assert next_tick(s, a) == (whole[0] if whole else next_tick(s, c))
    assert latest_tick(s, a, c) == (whole[-1] if whole else None)


def brute_ticks(cron: str, tz: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """Ticks in (lo, hi] by the documented DST rules, checking every minute of real time.

    Only for crons that restrict minute and hour (day fields '*'); independent of cron.py.
    """
    fields = croniter.expand(cron)[0]
    minutes, hours = fields[0], fields[1]
    wildcard = cron.split()[0].startswith("*") or cron.split()[1].startswith("*")

    def matches(wall: datetime) -> bool:
        return (minutes == ["*"] or wall.minute in minutes) and (
            hours == ["*"] or wall.hour in hours
        )

    out: set[datetime] = set()
    t = lo + MINUTE
    while t <= hi:
        here, before = t.astimezone(tz), (t - MINUTE).astimezone(tz)
        wall = here.replace(tzinfo=None)
        if matches(wall) and (wildcard or here.fold == 0):  # a repeated wall time fires once
            out.add(t)
        offset, offset_before = here.utcoffset(), before.utcoffset()
        assert offset is not None
        assert offset_before is not None
        jump = offset - offset_before
        if jump > timedelta(0) and not wildcard:  # clocks went forward at t: shift skipped ticks
            skipped = wall - jump
            while skipped < wall:
                if matches(skipped):
                    out.add(t + (skipped - (wall - jump)))
                skipped += MINUTE
        t += MINUTE
    return sorted(out)


TRANSITIONS = [
    ("Europe/Berlin", utc(2024, 3, 31, 1)),
    ("Europe/Berlin", utc(2024, 10, 27, 1)),
    ("America/New_York", utc(2024, 3, 10, 7)),
    ("America/New_York", utc(2024, 11, 3, 6)),
]
GRID_CRONS = [
    "*/20 * * * *",
    "0 * * * *",
    "0 */2 * * *",
    "30 2 * * *",
    "30 1 * * *",
    "15,45 2 * * *",
    "5 3 * * *",
]


@pytest.mark.parametrize("cron", GRID_CRONS)
@pytest.mark.parametrize(("tz", "change"), TRANSITIONS)
def test_ticks_around_a_clock_change_match_a_brute_force_reference(
    tz: str, change: datetime, cron: str
) -> None:
    s, zone = spec(cron, tz), ZoneInfo(tz)
    lo, hi = change - timedelta(hours=7), change + timedelta(hours=7)
    reference = brute_ticks(cron, zone, lo, hi)
    for start in range(-180, 181, 10):
        a = change + start * MINUTE
        assert next_tick(s, a) == next(
            (t for t in reference if t > a), ticks_between(s, hi, hi + timedelta(days=2))[0]
        )
        for length in (10, 50, 120, 180):
            b = a + length * MINUTE
            expected = [t for t in reference if a < t <= b]
            assert ticks_between(s, a, b) == expected, (a, b)
            assert latest_tick(s, a, b) == (expected[-1] if expected else None)


def test_next_and_latest_tick_find_sparse_ticks() -> None:
    leap = spec("0 12 29 2 *", "Europe/Berlin")
    assert next_tick(leap, utc(2024, 3, 1)) == utc(2028, 2, 29, 11)
    assert latest_tick(leap, None, utc(2028, 2, 28)) == utc(2024, 2, 29, 11)
    assert latest_tick(leap, utc(2024, 3, 1), utc(2028, 2, 28)) is None


def test_an_impossible_date_has_no_ticks() -> None:
    never = spec("0 0 30 2 *")
    assert next_tick(never, utc(2024, 1, 1)) is None
    assert ticks_between(never, utc(2024, 1, 1), utc(2025, 1, 1)) == []


def test_too_many_ticks_is_an_error_not_a_silent_cut() -> None:
    with pytest.raises(SchedulingError, match="over 100 ticks"):
        ticks_between(spec("* * * * *"), utc(2024, 1, 1), utc(2024, 1, 2), limit=100)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(SchedulingError, match="time-zone aware"):
        ticks_between(spec("* * * * *"), datetime(2024, 1, 1), utc(2024, 1, 2))


def test_random_cron_fields_are_refused() -> None:
    with pytest.raises(UnsupportedCronError) as info:
        next_tick(spec("R * * * *"), utc(2024, 1, 1))
    assert isinstance(info.value, ConfigError)


NOW = utc(2024, 6, 1, 12, 0, 30)


def test_plan_fires_ticks_within_grace_once() -> None:
    s = spec("* * * * *")
    assert plan_ticks(s, None, NOW) == [utc(2024, 6, 1, 12, 0)]
    assert plan_ticks(s, utc(2024, 6, 1, 12, 0), NOW) == [], "already fired"
    assert plan_ticks(s, utc(2024, 6, 1, 11, 59), NOW) == [utc(2024, 6, 1, 12, 0)]
    assert plan_ticks(s, NOW + MINUTE, NOW) == [], "a clock behind the last fire fires nothing"
    assert plan_ticks(s, None, NOW, grace=timedelta(minutes=3)) == [
        utc(2024, 6, 1, 11, 58),
        utc(2024, 6, 1, 11, 59),
        utc(2024, 6, 1, 12, 0),
    ]


def test_skip_drops_ticks_missed_during_an_outage() -> None:
    s = spec("0 * * * *", missed="skip")
    assert plan_ticks(s, utc(2024, 6, 1, 3), NOW) == [utc(2024, 6, 1, 12)]
    assert plan_ticks(s, utc(2024, 6, 1, 3), NOW + 5 * MINUTE) == []


def test_fire_once_catches_up_with_the_latest_missed_tick() -> None:
    s = spec("0 * * * *", missed="fire_once")
    assert plan_ticks(s, utc(2024, 6, 1, 3), NOW + 5 * MINUTE) == [utc(2024, 6, 1, 12)]
    assert plan_ticks(s, utc(2024, 6, 1, 3), NOW) == [utc(2024, 6, 1, 11), utc(2024, 6, 1, 12)]
    assert plan_ticks(s, None, NOW + 5 * MINUTE) == [], "never fired: nothing was missed"
    assert plan_ticks(s, utc(2024, 6, 1, 12), NOW + 5 * MINUTE) == [], "nothing missed"


@settings(max_examples=50, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 59), min_size=1, max_size=80),
    cron=st.sampled_from(["* * * * *", "*/2 * * * *", "0 * * * *", "* * * * * */15"]),
    missed=st.sampled_from(["skip", "fire_once"]),
)
def test_polling_within_grace_fires_every_tick_exactly_once(
    gaps: list[int], cron: str, missed: Literal["skip", "fire_once"]
) -> None:
    s = spec(cron, "Europe/Berlin", missed)
    start = utc(2024, 10, 27, 0, 40)  # through Berlin's repeated hour
    now, last = start, start
    fired: list[datetime] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        ticks = plan_ticks(s, last, now)
        assert all(last < t <= now for t in ticks)
        fired += ticks
        last = ticks[-1] if ticks else last
    assert fired == ticks_between(s, start, now)


def test_tick_id_is_deterministic_and_zone_independent() -> None:
    tick = utc(2024, 3, 31, 1, 30)
    same_instant = tick.astimezone(BERLIN)
    assert tick_id("nightly", tick) == tick_id("nightly", same_instant)
    assert tick_id("nightly", tick) == "d70f580c-25b0-5561-b0e2-90892771c886"  # pinned forever
    assert tick_id("nightly", tick) != tick_id("hourly", tick)
    assert tick_id("nightly", tick) != tick_id("nightly", tick + timedelta(seconds=1))
    assert uuid.UUID(tick_id("nightly", tick)).version == 5
