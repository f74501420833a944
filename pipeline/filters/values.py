"""Python values (decoded Avro, JSON, header metadata) as values the CEL library accepts.

The library converts ``None``, bool, int, float, str, bytes, lists, dicts, aware datetimes
(timestamp) and timedeltas (duration) itself, and refuses everything else, so the Avro logical
types it lacks get a fixed CEL reading here:

=========================  ==============================================================
Python (Avro)              CEL
=========================  ==============================================================
naive datetime             timestamp, read as UTC (Avro ``local-timestamp-*`` has no zone)
date (``date``)            timestamp at 00:00 UTC, so ``d < timestamp('2025-01-01T00:00:00Z')``
time (``time-*``)          duration since midnight, as Avro defines it: ``t < duration('12h')``
Decimal (``decimal``)      double; CEL has no decimal type, so precision beyond ~15 digits is lost
UUID (``uuid``)            string
Enum                       string (the symbol's name); fastavro already returns enums as str
bytearray, memoryview      bytes
tuple, set, frozenset      list
=========================  ==============================================================

Nesting is capped (:data:`MAX_DEPTH`): the library's converter recurses natively and crashes the
process on data tens of thousands of levels deep instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from uuid import UUID

__all__ = ["MAX_DEPTH", "CelValueError", "to_cel"]

MAX_DEPTH = 64
_PASS = (str, int, float, bytes, timedelta)  # bool is an int


class CelValueError(ValueError):
    """A value with no CEL reading (or nested too deep); the filter does not match."""


def to_cel(value: object, depth: int = 0) -> object:
    """``value`` in types the CEL library converts; raises :class:`CelValueError`."""
    if value is None or isinstance(value, _PASS):
        return value
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, time):
        return timedelta(
            hours=value.hour,
            minutes=value.minute,
            seconds=value.second,
            microseconds=value.microsecond,
        )
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if depth >= MAX_DEPTH:
        raise CelValueError(f"a value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        return {to_cel(k, depth + 1): to_cel(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_cel(item, depth + 1) for item in value]
    raise CelValueError(f"a {type(value).__name__} value, which has no CEL type")
