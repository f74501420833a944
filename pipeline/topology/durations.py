"""Durations ("500ms", "30s", "1h30m", "1d") and rates ("100/s", "6000/m") in topology.yaml.

Durations are parsed into :class:`~datetime.timedelta` and rates into :class:`Rate` once, at load
time, so no later layer handles unit strings. Only whole, non-negative amounts with an explicit unit
are accepted: a bare number is ambiguous (seconds? milliseconds?), so ``30`` is an error.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

UNITS: dict[str, timedelta] = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
EXAMPLES = "'500ms', '30s', '5m', '2h', '1d' or '1h30m'"
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
_UNIT_ONES = frozenset(f"1{unit}" for unit in UNITS)
_RATE = re.compile(r"(\d+)/(\d*)(ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(minutes=90)``; raises ValueError naming the accepted forms."""
    compact = text.strip()
    if not _WHOLE.fullmatch(compact):
        raise ValueError(f"a duration like {EXAMPLES}")
    try:
        return sum(
            (int(n) * UNITS[unit] for n, unit in _PART.findall(compact)),
            start=timedelta(0),
        )
    except OverflowError:
        raise ValueError(f"a duration below {timedelta.max.days} days") from None


def format_duration(value: timedelta) -> str:
    """The largest single unit that divides ``value`` exactly: 90s -> "90s", 2h -> "2h".

    Used in topic names (``msm.delay.30s``), so the rendering is stable and parses back.
    """
    if value < timedelta(0) or value % UNITS["ms"]:
        raise ValueError(f"{value!r} is not a whole, non-negative number of milliseconds")
    if not value:
        return "0s"
    for unit, size in UNITS.items():
        if not value % size:
            return f"{value // size}{unit}"
    raise AssertionError("unreachable: milliseconds divide every accepted value")


class Rate(BaseModel):
    """``count`` events per ``per``; "100/s" is Rate(count=100, per=1s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=1)
    per: timedelta

    @property
    def per_second(self) -> float:
        return self.count / self.per.total_seconds()

    def __str__(self) -> str:
        per = format_duration(self.per)
        return f"{self.count}/{per.removeprefix('1') if per in _UNIT_ONES else per}"


def parse_rate(text: str) -> Rate:
    """``"6000/m"`` or ``"5/10s"`` -> :class:`Rate`; raises ValueError naming the accepted forms."""
    match = _RATE.fullmatch(text.strip())
    if not match or int(match[1]) < 1 or match[2] == "0":
        raise ValueError("a rate like '100/s', '6000/m' or '5/10s' (a count >= 1 per duration)")
    count, amount, unit = match.groups()
    return Rate(count=int(count), per=int(amount or "1") * UNITS[unit])


def _duration_input(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration like {EXAMPLES} (a string with a unit)")
    return parse_duration(value)


def _rate_input(value: object) -> object:
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError("a rate like '100/s' or '6000/m' (a string)")
    return parse_rate(value)


_as_text = PlainSerializer(format_duration, return_type=str, when_used="json")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration longer than 0s")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration_input), _as_text]
"""A topology duration, zero allowed (the syntax has no sign, so never negative)."""
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_duration_input), AfterValidator(_positive), _as_text
]
"""A topology duration that must be longer than zero (timeouts, tiers, back-off)."""
RateField = Annotated[Rate, BeforeValidator(_rate_input), PlainSerializer(str, return_type=str)]
"""A topology rate, written "100/s"."""
