"""records.to_avro: JSON values to fastavro values, every error reported with its field path."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from pipeline.avro.records import FieldError, RecordError, compile_record, to_avro
from pipeline.avro.schemas import LoadedSchema, load_schema, parse_schema
from pipeline.errors import ConfigError, MSMError
from tests.publish_support import SCHEMAS, file_uploaded

OWNER = {
    "type": "record",
    "name": "Owner",
    "fields": [{"name": "email", "type": "string"}, {"name": "id", "type": "int"}],
}
RICH = parse_schema(
    {
        "type": "record",
        "name": "Rich",
        "namespace": "t",
        "fields": [
            {"name": "size", "type": "long"},
            {"name": "ratio", "type": "float", "default": 0.5},
            {"name": "ok", "type": "boolean", "default": True},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "labels", "type": {"type": "map", "values": "int"}, "default": {}},
            {"name": "owner", "type": ["null", OWNER], "default": None},
            {"name": "owners", "type": {"type": "array", "items": "Owner"}, "default": []},
            {
                "name": "kind",
                "type": {"type": "enum", "name": "Kind", "symbols": ["IMAGE", "VIDEO"]},
                "default": "IMAGE",
            },
            {"name": "blob", "type": "bytes", "default": "\u00ff"},
            {"name": "md5", "type": ["null", {"type": "fixed", "name": "Md5", "size": 4}]},
            {"name": "note", "type": ["null", "string", "long"], "default": None},
        ],
    }
)


def errors_of(schema: LoadedSchema, value: object) -> dict[str, FieldError]:
    with pytest.raises(RecordError) as caught:
        to_avro(schema, value)
    return {e.path: e for e in caught.value.errors}


def roundtrip(schema: LoadedSchema, record: dict[str, object]) -> Any:
    buffer = io.BytesIO()
    schemaless_writer(buffer, schema.parsed, record)
    buffer.seek(0)
    return schemaless_reader(buffer, schema.parsed, None)


def test_example_schema_converts_iso_timestamp_and_fills_defaults() -> None:
    schema = load_schema(SCHEMAS / "file_uploaded.v2.avsc")
    record = to_avro(schema, file_uploaded(file_id="f1"))
    assert record["uploaded_at"] == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert record["sha256"] is None  # default filled
    assert roundtrip(schema, record) == record


def test_defaults_and_values_roundtrip() -> None:
    record = to_avro(RICH, {"size": 3, "md5": "AAECAw==", "owner": {"email": "a@b", "id": 1}})
    assert record == {
        "size": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": [],
        "labels": {},
        "owner": {"email": "a@b", "id": 1},
        "owners": [],
        "kind": "IMAGE",
        "blob": b"\xff",  # Avro writes bytes defaults as latin-1 text
        "md5": b"\x00\x01\x02\x03",
        "note": None,
    }
    assert roundtrip(RICH, record) == record


def test_mutable_defaults_are_not_shared() -> None:
    first = to_avro(RICH, {"size": 1, "md5": None})
    tags = first["tags"]
    assert isinstance(tags, list)
    tags.append("x")
    assert to_avro(RICH, {"size": 1, "md5": None})["tags"] == []


def test_every_error_is_reported_with_its_path() -> None:
    errors = errors_of(
        RICH,
        {
            "size": "5",
            "tags": ["a", "b", 3],
            "labels": {"env": "prod"},
            "owner": {"email": 7, "id": 1},
            "owners": [{"email": "x", "id": 1}, {"email": "y"}],
            "kind": "AUDIO",
            "md5": "AAE=",
            "extra": 1,
        },
    )
    assert set(errors) == {
        "size",
        "tags[2]",
        'labels["env"]',
        "owner.email",
        "owners[1].id",
        "kind",
        "md5",
        "extra",
    }
    assert errors["size"].expected == "long"
    assert errors["size"].found == 'string "5"'
    assert errors["owners[1].id"].message == "required field is missing"
    assert errors["extra"].message == "unknown field"
    assert errors["kind"].expected == "one of ['IMAGE', 'VIDEO']"
    assert "4 bytes" in (errors["md5"].message + str(errors["md5"].expected))


def test_missing_required_fields_and_root_type() -> None:
    assert set(errors_of(RICH, {})) == {"size", "md5"}
    root = errors_of(RICH, ["not", "an", "object"])[""]
    assert root.expected == "record t.Rich"
    assert root.found == "array of 3"


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("int", 2**31, "out of range for int"),
        ("int", -(2**31) - 1, "out of range for int"),
        ("long", 2**63, "out of range for long"),
        ("int", True, "wrong type"),
        ("int", 5.0, "wrong type"),
        ("boolean", 1, "wrong type"),
        ("float", 1e39, "out of range for float"),
        ("double", "1.5", "wrong type"),
        ("string", b"x", "wrong type"),
        ("null", 0, "wrong type"),
        ("bytes", "not base64!", "invalid base64"),
        ("bytes", 5, "wrong type"),
    ],
)
def test_primitive_errors(kind: str, value: object, message: str) -> None:
    schema = parse_schema({"type": "record", "name": "P", "fields": [{"name": "v", "type": kind}]})
    assert errors_of(schema, {"v": value})["v"].message == message


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("int", -(2**31), -(2**31)),
        ("long", 2**63 - 1, 2**63 - 1),
        ("double", 3, 3.0),
        ("float", float("inf"), float("inf")),
        ("boolean", False, False),
        ("bytes", "aGk=", b"hi"),
        ("bytes", bytearray(b"hi"), b"hi"),
    ],
)
def test_primitive_values(kind: str, value: object, expected: object) -> None:
    schema = parse_schema({"type": "record", "name": "P", "fields": [{"name": "v", "type": kind}]})
    out = to_avro(schema, {"v": value})["v"]
    assert out == expected
    assert type(out) is type(expected)


def test_unions_accept_plain_and_tagged_json() -> None:
    base = {"size": 1, "md5": None}
    assert to_avro(RICH, {**base, "note": "hi"})["note"] == "hi"
    assert to_avro(RICH, {**base, "note": 7})["note"] == 7
    assert to_avro(RICH, {**base, "note": {"string": "hi"}})["note"] == "hi"
    assert to_avro(RICH, {**base, "note": {"long": 7}})["note"] == 7
    assert to_avro(RICH, {**base, "md5": {"Md5": "AAECAw=="}})["md5"] == b"\x00\x01\x02\x03"
    owner = {"email": "a@b", "id": 1}
    assert to_avro(RICH, {**base, "owner": {"Owner": owner}})["owner"] == owner


def test_union_errors_point_inside_the_matching_branch() -> None:
    assert set(errors_of(RICH, {"size": 1, "md5": None, "owner": {"id": "x"}})) == {
        "owner.email",
        "owner.id",
    }
    note = errors_of(RICH, {"size": 1, "md5": None, "note": 1.5})["note"]
    assert note.expected == "one of [null, string, long]"
    assert note.found == "number 1.5"
    tagged = errors_of(RICH, {"size": 1, "md5": None, "note": {"long": "x"}})["note"]
    assert tagged.expected == "long"


INT_R = {"name": "r", "type": "int"}
INT_S = {"name": "s", "type": "int"}


def test_union_of_two_records_picks_the_branch_and_fastavro_writes_it() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "U",
            "fields": [
                {
                    "name": "shape",
                    "type": [
                        {
                            "type": "record",
                            "name": "Circle",
                            "fields": [{"name": "r", "type": "int"}],
                        },
                        {
                            "type": "record",
                            "name": "Square",
                            "fields": [{"name": "s", "type": "int"}],
                        },
                    ],
                }
            ],
        }
    )
    record = to_avro(schema, {"shape": {"s": 2}})
    assert record == {"shape": ("Square", {"s": 2})}  # fastavro's tuple notation
    assert roundtrip(schema, record) == {"shape": {"s": 2}}


def test_recursive_record() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
        }
    )
    value = {"v": 1, "next": {"v": 2, "next": {"v": "x", "next": None}}}
    assert set(errors_of(schema, value)) == {"next.next.v"}
    good = {"v": 1, "next": {"v": 2, "next": None}}
    assert roundtrip(schema, to_avro(schema, good)) == good


@pytest.mark.parametrize(
    ("logical", "value", "expected"),
    [
        ("timestamp-millis", 1_700_000_000_123, datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)),
        ("timestamp-millis", "2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("timestamp-millis", "2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("timestamp-micros", 1, datetime(1970, 1, 1, 0, 0, 0, 1, UTC)),
        ("local-timestamp-millis", "2024-05-01T12:00:00", datetime(2024, 5, 1, 12)),
        ("date", "2024-02-29", date(2024, 2, 29)),
        ("date", 1, date(1970, 1, 2)),
        ("time-millis", 3_723_004, time(1, 2, 3, 4000)),
        ("time-micros", "01:02:03.000004", time(1, 2, 3, 4)),
    ],
)
def test_logical_types(logical: str, value: object, expected: object) -> None:
    base = "int" if logical in ("date", "time-millis") else "long"
    schema = parse_schema(
        {
            "type": "record",
            "name": "L",
            "fields": [{"name": "v", "type": {"type": base, "logicalType": logical}}],
        }
    )
    record = to_avro(schema, {"v": value})
    assert record["v"] == expected
    assert roundtrip(schema, record)["v"] == expected


def test_aware_datetime_is_normalised_to_utc() -> None:
    schema = load_schema(SCHEMAS / "user_deleted.avsc")
    plus_two = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    record = to_avro(schema, {"user_id": "u", "deleted_at": plus_two, "reason": "ABUSE"})
    assert record["deleted_at"] == datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("node", "value"),
    [
        ({"type": "long", "logicalType": "timestamp-millis"}, "yesterday"),
        ({"type": "long", "logicalType": "timestamp-millis"}, 1.5),
        ({"type": "long", "logicalType": "local-timestamp-millis"}, "2024-01-01T00:00:00Z"),
        ({"type": "int", "logicalType": "date"}, "2024-02-30"),
        ({"type": "int", "logicalType": "time-millis"}, 86_400_000),
        ({"type": "string", "logicalType": "uuid"}, "not-a-uuid"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, "1.234"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, "123.45"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, True),
    ],
)
def test_logical_type_errors(node: dict[str, object], value: object) -> None:
    schema = parse_schema({"type": "record", "name": "L", "fields": [{"name": "v", "type": node}]})
    error = errors_of(schema, {"v": value})["v"]
    assert error.message.startswith(f"invalid {node['logicalType']}")
    assert error.expected


def test_decimal_and_uuid_values() -> None:
    schema = parse_schema(
        {
            "type": "record",
            "name": "D",
            "fields": [
                {
                    "name": "amount",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
                },
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            ],
        }
    )
    record = to_avro(schema, {"amount": "12.5", "id": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"})
    assert record == {"amount": Decimal("12.50"), "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
    assert roundtrip(schema, record)["amount"] == Decimal("12.50")


def test_record_error_is_an_msm_error_naming_the_fields() -> None:
    converter = compile_record(RICH, subject="demo payload")
    with pytest.raises(RecordError) as caught:
        converter.convert({"size": "x", "md5": None, "bogus": 1})
    error = caught.value
    assert isinstance(error, MSMError)
    assert not error.retriable
    assert error.fields == ["size", "bogus"]
    assert str(error).startswith("invalid demo payload: size: wrong type (expected long")


def test_long_error_lists_are_shortened_in_the_message() -> None:
    with pytest.raises(RecordError) as caught:
        to_avro(RICH, {"size": 1, "md5": None, "tags": list(range(25))})
    assert len(caught.value.errors) == 25
    assert str(caught.value).endswith("; and 15 more")


def test_invalid_schema_default_fails_at_compile_time() -> None:
    # fastavro.parse_schema refuses this too; the compiler must not rely on it.
    schema = {
        "type": "record",
        "name": "B",
        "fields": [{"name": "n", "type": "int", "default": "x"}],
    }
    with pytest.raises(ConfigError, match="invalid default for field 'n'"):
        compile_record(schema)


def test_non_record_schema_is_refused() -> None:
    with pytest.raises(TypeError):
        compile_record(parse_schema("string"))
