"""An event's payload as the JSON body of an HTTP push.

The body uses the conventions the frontend accepts as JSON input (see
:mod:`pipeline.avro.records`), so an endpoint that also publishes can send back what it got:
bytes and fixed as base64, instants as ISO 8601 (``Z`` for UTC), dates, times and local
timestamps as ISO 8601 without offset, decimals as strings (no exponent, nothing lost to a
float), UUIDs as strings, unions as the plain value. JSON has no NaN or infinities; they are
sent as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, as JavaScript spells them.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.errors import MSMError
from pipeline.topology import Topology

__all__ = ["PayloadError", "PayloadJson", "to_json_value"]


class PayloadError(MSMError):
    """A task's payload cannot be read: it will not be readable on a retry either."""


class PayloadJson:
    """Every event's schemas, loaded once per worker; :meth:`body` is called per push."""

    def __init__(self, topology: Topology) -> None:
        self._schemas = {
            name: EventSchemas.load(spec.schema_path, spec.previous_schemas)
            for name, spec in topology.events.items()
        }

    def decode(self, headers: Mapping[str, bytes], value: bytes) -> object:
        """The payload in the event's current schema, as fastavro values."""
        event_type = h.get_str(headers, h.EVENT_TYPE) or ""
        schemas = self._schemas.get(event_type)
        if schemas is None:
            raise PayloadError(f"event type {event_type!r} is not in the topology")
        try:
            return wire.decode(value, schemas)
        except wire.WireError as exc:
            raise PayloadError(f"payload of {event_type} does not decode: {exc}") from None

    def body(self, headers: Mapping[str, bytes], value: bytes) -> bytes:
        return dumps(self.decode(headers, value))


def dumps(value: object) -> bytes:
    return json.dumps(
        to_json_value(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def to_json_value(value: object) -> object:
    """A fastavro value as plain JSON types (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec=_timespec(value.microsecond))
        utc = value.astimezone(UTC)
        return utc.isoformat(timespec=_timespec(utc.microsecond)).replace("+00:00", "Z")
    if isinstance(value, time):
        return value.isoformat(timespec=_timespec(value.microsecond))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise PayloadError(f"no JSON form for a {type(value).__name__}")


def _timespec(microsecond: int) -> str:
    """Milliseconds when that is exact (the usual precision of timestamps), else as needed."""
    return "milliseconds" if microsecond and not microsecond % 1000 else "auto"
