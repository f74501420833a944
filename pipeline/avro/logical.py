"""JSON values to Python values for Avro logical types.

Publishers send JSON, where instants are ISO 8601 strings or epoch numbers and decimals are
strings; fastavro wants datetimes, dates and Decimals. Each converter takes the raw value and
returns fastavro's representation, or raises ValueError whose message names what was expected
(the caller turns it into a FieldError with the field's path).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

Convert = Callable[[object], object]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DAY_MS = 86_400_000


def _instant(unit_us: int, local: bool, expected: str) -> Convert:
    """timestamp-* (aware, UTC) and local-timestamp-* (naive) from epoch ints or ISO strings."""
    base = _EPOCH_NAIVE if local else _EPOCH

    def convert(value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return base + timedelta(microseconds=value * unit_us)
            except OverflowError:
                raise ValueError(f"{expected} (out of the datetime range)") from None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(expected) from None
        if not isinstance(value, datetime):
            raise ValueError(expected)
        if local:
            if value.tzinfo is not None:
                raise ValueError(f"{expected} (local time, without a UTC offset)")
            return value
        # An instant without an offset is read as UTC: JSON producers rarely mean local time.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    return convert


def _date(value: object) -> object:
    expected = "a date: days since 1970-01-01 or 'YYYY-MM-DD'"
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return date(1970, 1, 1) + timedelta(days=value)
        except OverflowError:
            raise ValueError(expected) from None
    if isinstance(value, datetime):
        raise ValueError(expected)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(expected)


def _time(unit_us: int, expected: str) -> Convert:
    def convert(value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            micros = value * unit_us
            if not 0 <= micros < _DAY_MS * 1000:
                raise ValueError(f"{expected} (within one day)")
            seconds, us = divmod(micros, 1_000_000)
            return time(seconds // 3600, seconds // 60 % 60, seconds % 60, us)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = time.fromisoformat(value)
        if isinstance(value, time) and value.tzinfo is None:
            return value
        raise ValueError(expected)

    return convert


def _uuid(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValueError("a UUID string")


def _decimal(precision: int, scale: int) -> Convert:
    expected = f"a decimal with at most {precision} digits, {scale} after the point"
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
            raise ValueError(f"{expected} (a string or number)")
        try:
            number = Decimal(str(value)) if not isinstance(value, Decimal) else value
            exact = number.quantize(quantum)
        except InvalidOperation:
            raise ValueError(expected) from None
        if exact != number or len(exact.as_tuple().digits) > precision:
            raise ValueError(expected)
        return exact

    return convert


def logical_converter(logical: str, node: dict[str, object]) -> Convert | None:
    """The converter for a logical type, or None for one MSM leaves to its underlying type."""
    if logical == "decimal":
        precision, scale = node.get("precision"), node.get("scale", 0)
        if isinstance(precision, int) and isinstance(scale, int):
            return _decimal(precision, scale)
        return None
    return _SIMPLE.get(logical)


_SIMPLE: dict[str, Convert] = {
    "timestamp-millis": _instant(1000, False, "an ISO 8601 instant or epoch milliseconds"),
    "timestamp-micros": _instant(1, False, "an ISO 8601 instant or epoch microseconds"),
    "local-timestamp-millis": _instant(1000, True, "an ISO 8601 local time or milliseconds"),
    "local-timestamp-micros": _instant(1, True, "an ISO 8601 local time or microseconds"),
    "date": _date,
    "time-millis": _time(1000, "a time of day: 'HH:MM:SS[.fff]' or milliseconds"),
    "time-micros": _time(1, "a time of day: 'HH:MM:SS[.ffffff]' or microseconds"),
    "uuid": _uuid,
}
