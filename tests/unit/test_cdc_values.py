"""Row text (pgoutput's and ``::text``'s) to the values Avro wants, by type OID and schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pipeline.cdc.errors import CdcError
from pipeline.cdc.values import BY_OID, RowShape

FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": "long"},
    {"name": "name", "type": ["null", "string"], "default": None},
    {"name": "price", "type": ["null", "string"], "default": None},  # numeric kept as text
    {"name": "amount", "type": ["null", "double"], "default": None},
    {"name": "seen", "type": ["null", "boolean"], "default": None},
    {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
]
COLUMNS = [
    ("id", 20),
    ("name", 25),
    ("price", 1700),
    ("amount", 1700),
    ("seen", 16),
    ("at", 1184),
    ("added_later", 23),
]


def test_a_row_converts_by_type_and_keeps_text_for_string_fields() -> None:
    row = RowShape(FIELDS).row(
        "public.items",
        COLUMNS,
        ["7", "bolt", "1.50", "2.25", "t", "2025-01-02 03:04:05.123456+01", "3"],
    )
    assert row == {
        "id": 7,
        "name": "bolt",
        "price": "1.50",
        "amount": Decimal("2.25"),
        "seen": True,
        "at": datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1))),
    }  # added_later is not in the event's row record: left out


def test_nulls_stay_none_and_unchanged_toast_values_are_left_out() -> None:
    unchanged = object()
    row = RowShape(FIELDS).row("t", COLUMNS, ["7", None, unchanged, None, None, None, None])
    assert row == {"id": 7, "name": None, "amount": None, "seen": None, "at": None}


def test_missing_required_fields_are_named() -> None:
    assert RowShape(FIELDS).missing(["name", "price"]) == ["at", "id"]


def test_a_value_that_does_not_parse_names_the_column() -> None:
    with pytest.raises(CdcError, match=r"public\.items\.id: cannot read 'seven'"):
        RowShape(FIELDS).row("public.items", COLUMNS, ["seven", None, None, None, None, None, None])


@pytest.mark.parametrize(
    ("oid", "text", "value"),
    [
        (16, "f", False),
        (17, "\\x00ff", b"\x00\xff"),
        (21, "-3", -3),
        (701, "NaN", None),  # checked below: NaN != NaN
        (1082, "2025-01-02", date(2025, 1, 2)),
        (1184, "2025-01-02 03:04:05+00", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_type_conversions(oid: int, text: str, value: object) -> None:
    out = BY_OID[oid](text)
    if value is None:
        assert out != out  # NaN
    else:
        assert out == value
