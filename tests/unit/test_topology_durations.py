"""Durations and rates as written in topology.yaml."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pipeline.topology.durations import (
    Duration,
    PositiveDuration,
    Rate,
    RateField,
    format_duration,
    parse_duration,
    parse_rate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        ("365d", timedelta(days=365)),
        ("0s", timedelta(0)),
        (" 10s ", timedelta(seconds=10)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["5x", "-1s", "", "s", "10", "1.5s", "1 s", "1S", "1w", "ms", "1s-", "+1s"]
)
def test_bad_durations_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="a duration like '500ms', '30s'"):
        parse_duration(text)


def test_absurdly_long_durations_are_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="below"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1), "1h"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=36), "36h"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(days=365), "365d"),
        (timedelta(0), "0s"),
    ],
)
def test_durations_format_compactly(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [timedelta(microseconds=1500), timedelta(seconds=-1)])
def test_format_refuses_what_it_cannot_render_exactly(value: timedelta) -> None:
    with pytest.raises(ValueError, match="milliseconds"):
        format_duration(value)


@given(st.integers(min_value=0, max_value=400 * 24 * 3600 * 1000))
def test_format_and_parse_round_trip(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "count", "per"),
    [
        ("100/s", 100, timedelta(seconds=1)),
        ("6000/m", 6000, timedelta(minutes=1)),
        ("5/10s", 5, timedelta(seconds=10)),
        ("1/d", 1, timedelta(days=1)),
        ("20/500ms", 20, timedelta(milliseconds=500)),
    ],
)
def test_rates_parse_and_render_back(text: str, count: int, per: timedelta) -> None:
    rate = parse_rate(text)
    assert rate == Rate(count=count, per=per)
    assert str(rate) == text
    assert rate.per_second == pytest.approx(count / per.total_seconds())


@pytest.mark.parametrize("text", ["0/s", "5x", "100", "/s", "100/0s", "-1/s", "1.5/s", "100/x"])
def test_bad_rates_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="a rate like '100/s'"):
        parse_rate(text)


class _Example(BaseModel):
    any_length: Duration
    positive: PositiveDuration
    rate: RateField


def test_model_fields_parse_strings_and_reject_bare_numbers() -> None:
    ok = _Example.model_validate({"any_length": "0s", "positive": "1d", "rate": "6000/m"})
    assert ok.any_length == timedelta(0)
    assert ok.positive == timedelta(days=1)
    assert ok.rate.per_second == 100
    assert ok.model_dump(mode="json") == {"any_length": "0s", "positive": "1d", "rate": "6000/m"}
    with pytest.raises(ValidationError) as info:
        _Example.model_validate({"any_length": 30, "positive": "0s", "rate": 100})
    messages = {e["loc"][0]: e["msg"] for e in info.value.errors()}
    assert "a string with a unit" in str(messages["any_length"])
    assert "longer than 0s" in str(messages["positive"])
    assert "a rate like" in str(messages["rate"])
