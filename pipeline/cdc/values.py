"""A row's text values (pgoutput's and ``::text``'s form) as the Python values Avro wants.

pgoutput sends every column in its type's text output form, and the snapshot reads columns cast
to text, so both paths share this one conversion. It goes by the column's PostgreSQL type OID,
except that a column whose Avro field is a plain string keeps its text: a ``numeric`` or
``jsonb`` column can be declared ``string`` in the event's schema and arrives exactly as
PostgreSQL printed it. The event's RecordConverter then validates the result like any publish.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.cdc.errors import CdcError

Convert = Callable[[str], object]


def _bool(text: str) -> bool:
    if text in ("t", "true"):
        return True
    if text in ("f", "false"):
        return False
    raise ValueError(text)


def _bytea(text: str) -> bytes:
    if not text.startswith("\\x"):
        raise ValueError("bytea in escape format; set bytea_output = 'hex'")
    return bytes.fromhex(text[2:])


def _instant(text: str) -> datetime:
    # PostgreSQL prints "2025-01-02 03:04:05.123+00"; Python 3.11 parses that form.
    return datetime.fromisoformat(text)


def _float(text: str) -> float:
    return float(text)  # also "NaN", "Infinity", "-Infinity", as PostgreSQL prints them


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None


# Type OIDs from PostgreSQL's pg_type.dat; anything else keeps its text.
BY_OID: dict[int, Convert] = {
    16: _bool,  # bool
    17: _bytea,  # bytea
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    26: int,  # oid
    700: _float,  # float4
    701: _float,  # float8
    1082: date.fromisoformat,  # date
    1083: time.fromisoformat,  # time
    1114: datetime.fromisoformat,  # timestamp (no zone)
    1184: _instant,  # timestamptz
    1700: _decimal,  # numeric
}


def _plain_string(avro_type: Any) -> bool:
    """The field is ``string`` or ``["null", "string"]``: keep PostgreSQL's text."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        return len(branches) == 1 and _plain_string(branches[0])
    if isinstance(avro_type, dict):
        return bool(avro_type.get("type") == "string" and "logicalType" not in avro_type)
    return bool(avro_type == "string")


class RowShape:
    """How to turn one table's columns into the event's row record, built when a relation is
    first seen (and again when its columns change)."""

    def __init__(self, row_fields: Sequence[Mapping[str, Any]]) -> None:
        self.fields = [str(f["name"]) for f in row_fields]
        self._keep_text = {str(f["name"]) for f in row_fields if _plain_string(f["type"])}
        self._required = {str(f["name"]) for f in row_fields if "default" not in f}

    def missing(self, columns: Sequence[str]) -> list[str]:
        """Row fields without a default that the table has no column for."""
        return sorted(self._required - set(columns))

    def row(
        self, table: str, columns: Sequence[tuple[str, int]], values: Sequence[object]
    ) -> dict[str, object]:
        """``values``: text or None per column; other values (an unchanged TOAST marker) are
        left out, so the field takes its default."""
        out: dict[str, object] = {}
        wanted = set(self.fields)
        for (name, oid), text in zip(columns, values, strict=True):
            if name not in wanted:
                continue  # a column the event does not carry (added to the table later)
            if text is None:
                out[name] = None
            elif isinstance(text, str):
                out[name] = text if name in self._keep_text else _convert(table, name, oid, text)
        return out


def _convert(table: str, column: str, oid: int, text: str) -> object:
    convert = BY_OID.get(oid)
    if convert is None:
        return text
    try:
        return convert(text)
    except ValueError as exc:
        found = f"{text[:40]!r} (type oid {oid}): {exc}"
        raise CdcError(f"{table}.{column}: cannot read {found}") from None
