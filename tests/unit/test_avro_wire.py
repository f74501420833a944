"""Single-object encoding: layout, version resolution and every WireError code."""

from __future__ import annotations

import io

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.avro import wire
from pipeline.avro.records import to_avro
from pipeline.avro.schemas import EventSchemas, load_schema, parse_schema
from tests.publish_support import SCHEMAS, file_uploaded

V1 = SCHEMAS / "file_uploaded.v1.avsc"
V2 = SCHEMAS / "file_uploaded.v2.avsc"
SCHEMAS_V2 = EventSchemas.load(V2, [V1])
CURRENT = SCHEMAS_V2.current
OLD = load_schema(V1)


def encoded(payload: dict[str, object] | None = None) -> bytes:
    return wire.encode(CURRENT, to_avro(CURRENT, payload or file_uploaded(file_id="f1")))


def test_layout_is_marker_fingerprint_body() -> None:
    data = encoded()
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == CURRENT.fingerprint
    assert wire.fingerprint_of(data) == CURRENT.fingerprint
    body = io.BytesIO()
    schemaless_writer(body, CURRENT.parsed, to_avro(CURRENT, file_uploaded(file_id="f1")))
    assert data[10:] == body.getvalue()


def test_roundtrip_current_version() -> None:
    record = to_avro(CURRENT, file_uploaded(file_id="f1", sha256="abc"))
    assert wire.decode(wire.encode(CURRENT, record), SCHEMAS_V2) == record


def test_old_version_resolves_to_current_reader() -> None:
    old_record = to_avro(OLD, file_uploaded(file_id="f-old"))
    decoded = wire.decode(wire.encode(OLD, old_record), SCHEMAS_V2)
    assert decoded == {**old_record, "sha256": None}  # filled from the v2 default


def test_plain_mapping_decodes_with_the_writer_schema() -> None:
    old_record = to_avro(OLD, file_uploaded(file_id="f-old"))
    decoded = wire.decode(wire.encode(OLD, old_record), {OLD.fingerprint: OLD})
    assert decoded == old_record


def assert_code(data: bytes, code: str) -> wire.WireError:
    with pytest.raises(wire.WireError) as caught:
        wire.decode(data, SCHEMAS_V2)
    assert caught.value.code == code
    assert caught.value.retriable is False
    return caught.value


def test_bad_marker() -> None:
    assert_code(b"\x00\x01" + encoded()[2:], "bad_marker")
    assert_code(b'{"file_id": "f1"}', "bad_marker")
    assert_code(b"", "truncated")
    assert_code(b"\xc3", "truncated")


def test_unknown_fingerprint() -> None:
    other = parse_schema({"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]})
    error = assert_code(wire.encode(other, {"a": 1}), "unknown_fingerprint")
    assert isinstance(error, wire.UnknownFingerprintError)
    assert error.fingerprint == other.fingerprint
    assert CURRENT.fingerprint_hex in str(error)


def test_every_truncation_is_reported_as_truncated() -> None:
    data = encoded()
    for cut in range(len(data)):
        assert_code(data[:cut], "truncated")


def test_trailing_bytes() -> None:
    assert_code(encoded() + b"\x00", "trailing_bytes")


def test_undecodable_body() -> None:
    # v2 body: six fields then the sha256 union index; index 9 does not exist.
    data = encoded()
    assert_code(data[:-1] + b"\x12", "undecodable")
    # a string field with invalid UTF-8 (file_id "f1" -> 0xff 0xfe)
    assert data[10:13] == b"\x04f1"
    assert_code(data[:11] + b"\xff\xfe" + data[13:], "undecodable")


def test_encode_refuses_records_fastavro_cannot_write() -> None:
    with pytest.raises(wire.UnencodableError):
        wire.encode(CURRENT, {"file_id": 5})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bodies_fail_only_with_wire_errors(body: bytes) -> None:
    data = wire.MARKER + CURRENT.fingerprint + body
    try:
        wire.decode(data, SCHEMAS_V2)
        code = "decoded"
    except wire.WireError as exc:  # anything else propagates and fails the test
        code = exc.code
    assert code in {"decoded", "truncated", "undecodable", "trailing_bytes"}
