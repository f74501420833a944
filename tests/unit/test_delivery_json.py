"""An HTTP push's body: the payload as JSON the frontend would accept back unchanged."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import headers as h
from pipeline.agents.delivery_json import PayloadError, PayloadJson, dumps, to_json_value
from pipeline.avro import wire
from pipeline.avro.records import compile_record, to_avro
from pipeline.avro.schemas import load_schema, parse_schema
from pipeline.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
EVERYTHING = parse_schema(
    {
        "type": "record",
        "name": "Everything",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "n", "type": "long"},
            {"name": "x", "type": "double"},
            {"name": "flag", "type": "boolean"},
            {"name": "blob", "type": "bytes"},
            {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}},
            {
                "name": "money",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "colour", "type": {"type": "enum", "name": "C", "symbols": ["RED", "BLUE"]}},
            {"name": "maybe", "type": ["null", "long", "string"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "labels", "type": {"type": "map", "values": "int"}},
        ],
    }
)
DOCUMENT = {
    "s": "héllo",
    "n": 2**40,
    "x": 1.5,
    "flag": True,
    "blob": "AAEC/w==",
    "fx": "AQIDBA==",
    "at": "2025-01-02T03:04:05.678Z",
    "at_us": "2025-01-02T03:04:05.678901Z",
    "local": "2025-01-02T03:04:05.678",
    "day": "2025-01-02",
    "tod": "03:04:05.678",
    "money": "1234.50",
    "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "colour": "BLUE",
    "maybe": "text",
    "tags": ["a", "b"],
    "labels": {"k": 1},
}


def test_decoded_payload_round_trips_through_the_frontends_json_input() -> None:
    record = to_avro(EVERYTHING, DOCUMENT)
    decoded = wire.decode(wire.encode(EVERYTHING, record), {EVERYTHING.fingerprint: EVERYTHING})
    body = json.loads(dumps(decoded))
    assert body == DOCUMENT  # the frontend's conventions, value for value
    assert compile_record(EVERYTHING).convert(body) == record


def test_values_map_to_plain_json() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert to_json_value(at) == "2025-01-02T03:04:05Z"
    assert to_json_value(datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05"
    assert to_json_value(date(2025, 1, 2)) == "2025-01-02"
    assert to_json_value(time(3, 4, 5)) == "03:04:05"
    assert to_json_value(Decimal("1E+3")) == "1000"
    assert to_json_value(b"\x00\xff") == "AP8="
    u = uuid.uuid4()
    assert to_json_value(u) == str(u)
    assert to_json_value({"a": (1, None)}) == {"a": [1, None]}
    assert [to_json_value(v) for v in (math.nan, math.inf, -math.inf)] == [
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    with pytest.raises(PayloadError):
        to_json_value(object())


def test_payload_of_an_older_version_is_read_in_the_current_one() -> None:
    payloads = PayloadJson(load_topology(REPO / "topology.yaml"))
    v1 = load_schema(REPO / "schemas/file_uploaded.v1.avsc")
    doc = {
        "file_id": "f1",
        "owner_id": "u1",
        "path": "/a.png",
        "size": 10,
        "mime_type": "image/png",
        "uploaded_at": 1_735_787_045_678,
    }
    headers = {h.EVENT_TYPE: b"file.uploaded"}
    body = json.loads(payloads.body(headers, wire.encode(v1, to_avro(v1, doc))))
    assert body == {**doc, "uploaded_at": "2025-01-02T03:04:05.678Z", "sha256": None}


@pytest.mark.parametrize(
    ("event_type", "value", "message"),
    [
        (b"no.such.event", b"\xc3\x01" + bytes(8), "not in the topology"),
        (b"file.uploaded", b"{}", "does not decode"),
        (b"file.uploaded", b"\xc3\x01" + bytes(8), "does not decode"),
    ],
)
def test_unreadable_payloads_are_payload_errors(
    event_type: bytes, value: bytes, message: str
) -> None:
    payloads = PayloadJson(load_topology(REPO / "topology.yaml"))
    with pytest.raises(PayloadError, match=message):
        payloads.body({h.EVENT_TYPE: event_type}, value)
