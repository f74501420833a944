"""Validate a JSON-like record against an Avro schema and convert it to fastavro's values.

Ingress must tell a publisher everything wrong with a payload at once, each problem naming the
field to fix (``size``, ``tags[2]``, ``owner.email``, ``labels["env"]``), and must do so cheaply:
a schema is compiled once into a tree of closures (:func:`compile_record`), so a call only walks
the value. Paths are built only when something is wrong.

JSON conventions accepted (Python-native values are accepted as well):

- unions: the plain value (branches tried in schema order) or Avro's JSON form ``{"long": 5}``;
- bytes and fixed: a base64 string (or ``bytes``);
- timestamps: an ISO 8601 string or epoch milliseconds/microseconds as the logical type says;
  decimals: a string or number; dates: ``YYYY-MM-DD`` or days since the epoch;
- int and long must be JSON integers within range (``5.0`` and ``true`` are not integers);
- missing fields take their schema default; unknown fields are errors.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from fastavro.types import Schema

from pipeline.avro import _compile
from pipeline.avro._field_errors import Converter, FieldError
from pipeline.avro.schemas import LoadedSchema
from pipeline.errors import MSMError

__all__ = ["FieldError", "RecordConverter", "RecordError", "compile_record", "to_avro"]

_SHOWN = 10


class RecordError(MSMError):
    """A record does not match its schema; ``errors`` lists every field that is wrong."""

    def __init__(self, errors: list[FieldError], subject: str = "record") -> None:
        self.errors = errors
        self.subject = subject
        shown = "; ".join(str(e) for e in errors[:_SHOWN])
        more = f"; and {len(errors) - _SHOWN} more" if len(errors) > _SHOWN else ""
        super().__init__(f"invalid {subject}: {shown}{more}")

    @property
    def fields(self) -> list[str]:
        return [e.path for e in self.errors]


class RecordConverter:
    """A compiled validator for one record schema; call :meth:`convert` per value."""

    def __init__(self, schema: LoadedSchema | Schema, *, subject: str | None = None) -> None:
        named: Mapping[str, object] | None = None
        if isinstance(schema, LoadedSchema):
            named, schema = schema.named, schema.parsed
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise TypeError("an event schema must be an Avro record")
        self.schema = schema
        self.subject = subject or str(schema.get("name", "record"))
        self._convert: Converter = _compile.compile_schema(schema, named)

    def convert(self, value: object) -> dict[str, object]:
        """The record as fastavro values, or RecordError listing every field that is wrong."""
        errors: list[FieldError] = []
        out = self._convert(value, errors)
        if errors:
            raise RecordError(errors, self.subject)
        assert isinstance(out, dict)  # a record converter returns a dict when there are no errors
        return out


def compile_record(schema: LoadedSchema | Schema, *, subject: str | None = None) -> RecordConverter:
    """Compile once, convert many times: what ingress and publishers keep per event."""
    return RecordConverter(schema, subject=subject)


_cache: dict[int, tuple[object, RecordConverter]] = {}
_cache_lock = threading.Lock()


def to_avro(schema: LoadedSchema | Schema, value: object) -> dict[str, object]:
    """Validate and convert ``value`` for a record schema, compiled on first use.

    The cache is keyed by the schema object's identity and its entry keeps that object alive,
    so an id cannot be reused by another schema while cached. Schemas are long-lived and few;
    code handling many throwaway schemas should use compile_record instead.
    """
    entry = _cache.get(id(schema))
    if entry is None:
        with _cache_lock:
            entry = _cache.get(id(schema))
            if entry is None:
                entry = _cache[id(schema)] = (schema, RecordConverter(schema))
    return entry[1].convert(value)
