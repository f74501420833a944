"""The frontend's decode-validate-normalise core, without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import headers as h
from pipeline import trace
from pipeline.agents.frontend_normalize import Accepted, Normalizer, Rejected
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000_000
TOPIC = "msm.in.file.uploaded"
V1 = {
    "file_id": "f1",
    "owner_id": "u1",
    "path": "/a.png",
    "size": 10,
    "mime_type": "image/png",
    "uploaded_at": NOW,
}


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology(REPO / "topology.yaml")


@pytest.fixture
def normalizer(topology: Topology) -> Normalizer:
    return Normalizer(topology, clock_ms=lambda: NOW)


def _accept(result: Accepted | Rejected) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def _reject(result: Accepted | Rejected) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


def test_avro_v1_json_and_v2_come_out_byte_identical(normalizer: Normalizer) -> None:
    v1 = load_schema(REPO / "schemas/file_uploaded.v1.avsc")
    v2 = load_schema(REPO / "schemas/file_uploaded.v2.avsc")
    from_v1 = _accept(normalizer.normalize(TOPIC, None, wire.encode(v1, V1), [], 0, 1))
    from_json = _accept(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), [], 0, 2))
    v2_bytes = wire.encode(v2, {**V1, "sha256": None})
    from_v2 = _accept(normalizer.normalize(TOPIC, None, v2_bytes, [], 0, 3))
    assert from_v1.value == from_json.value == from_v2.value == v2_bytes
    assert wire.fingerprint_of(from_v1.value) == v2.fingerprint
    assert from_v2.value is v2_bytes  # current-version bytes pass through untouched


def test_accepted_headers_key_and_given_id(normalizer: Normalizer) -> None:
    given = [(h.EVENT_ID, b"evt-1"), ("traceparent", TRACEPARENT), ("x-user", b"1")]
    out = _accept(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), given, 0, 0))
    found = dict(out.headers)
    assert found[h.EVENT_ID] == b"evt-1"
    assert found[h.EVENT_TYPE] == b"file.uploaded"
    assert found[h.PUBLISHED_AT] == str(NOW).encode()
    assert found["traceparent"] == TRACEPARENT
    assert found["x-user"] == b"1"
    assert h.DELIVER_AT not in found
    assert out.key == b"f1"  # the event's key field when the record has no key
    assert found[h.KEY] == b"f1"  # as text, for filters and handlers


TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("given", [[], [("traceparent", b"00-abc-def-01")]])
def test_a_trace_starts_at_ingress_without_a_valid_traceparent(
    normalizer: Normalizer, given: list[tuple[str, bytes]]
) -> None:
    out = _accept(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), given, 0, 0))
    assert [k for k, _ in out.headers].count("traceparent") == 1
    assert trace.valid(dict(out.headers)["traceparent"])


def test_a_binary_key_is_not_copied_into_the_key_header(normalizer: Normalizer) -> None:
    out = _accept(normalizer.normalize(TOPIC, b"\xff\x00", json.dumps(V1).encode(), [], 0, 0))
    assert out.key == b"\xff\x00"
    assert h.KEY not in dict(out.headers)


def test_assigned_ids_are_unique_and_an_explicit_key_wins(normalizer: Normalizer) -> None:
    body = json.dumps(V1).encode()
    a = _accept(normalizer.normalize(TOPIC, b"k", body, [], 0, 0))
    b = _accept(normalizer.normalize(TOPIC, None, body, [], 0, 1))
    assert a.event_id != b.event_id
    assert a.key == b"k"


def test_delay_header_becomes_deliver_at(normalizer: Normalizer) -> None:
    body = json.dumps(V1).encode()
    out = _accept(normalizer.normalize(TOPIC, None, body, [(h.DELAY, b"30000")], 0, 0))
    assert out.deliver_at_ms == NOW + 30_000
    assert dict(out.headers)[h.DELIVER_AT] == str(NOW + 30_000).encode()


def test_a_publishers_priority_is_kept_and_other_msm_headers_are_not(
    normalizer: Normalizer,
) -> None:
    given = [(h.PRIORITY, b"high"), (h.TARGET, b"msm.sub.thumbnailer"), (h.ATTEMPT, b"9")]
    out = _accept(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), given, 0, 0))
    found = dict(out.headers)
    assert found[h.PRIORITY] == b"high"
    assert h.TARGET not in found  # a publisher cannot route past fan-out
    assert h.ATTEMPT not in found


def test_an_unknown_priority_is_rejected_naming_the_header(normalizer: Normalizer) -> None:
    given = [(h.PRIORITY, b"urgent")]
    out = _reject(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), given, 0, 0))
    assert dict(out.headers)[h.REJECT_REASON] == b"bad_priority"
    assert dict(out.headers)[h.REJECT_FIELD] == h.PRIORITY.encode()


@pytest.mark.parametrize(
    ("value", "extra", "reason", "field"),
    [
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", [], "unknown_fingerprint", ""),
        (b"{not json", [], "invalid_json", ""),
        (
            json.dumps({k: v for k, v in V1.items() if k != "size"}).encode(),
            [],
            "missing_field",
            "size",
        ),
        (json.dumps({**V1, "size": "big"}).encode(), [], "schema_mismatch", "size"),
        (b"x" * (1_048_576 + 1), [], "oversize", ""),  # max_bytes + 1
        (b"", [], "empty", ""),
        (json.dumps(V1).encode(), [(h.DELIVER_AT, b"soon")], "bad_header", h.DELIVER_AT),
        (b"\x00\x01\x02", [(h.CONTENT_TYPE, b"avro/binary")], "bad_marker", ""),
    ],
)
def test_bad_input_is_rejected_with_reason_field_and_source(
    normalizer: Normalizer, value: bytes, extra: list[tuple[str, bytes]], reason: str, field: str
) -> None:
    original = [("x-user", b"1"), *extra]
    out = _reject(normalizer.normalize(TOPIC, b"key", value, original, 4, 42))
    assert out.reason == reason
    assert out.field == field
    assert out.value == value
    assert out.key == b"key"
    found = dict(out.headers)
    assert found[h.REJECT_REASON] == reason.encode()
    assert found[h.REJECT_MESSAGE]
    assert found[h.SOURCE_TOPIC] == TOPIC.encode()
    assert (found[h.SOURCE_PARTITION], found[h.SOURCE_OFFSET]) == (b"4", b"42")
    assert out.headers[: len(original)] == original  # the original headers come first


def test_truncated_avro_is_rejected(normalizer: Normalizer) -> None:
    v2 = load_schema(REPO / "schemas/file_uploaded.v2.avsc")
    data = wire.encode(v2, {**V1, "sha256": "ab"})
    out = _reject(normalizer.normalize(TOPIC, None, data[:-5], [], 0, 0))
    assert out.reason in {"truncated", "undecodable"}


def test_a_record_from_an_unknown_topic_is_rejected(normalizer: Normalizer) -> None:
    out = _reject(normalizer.normalize("msm.in.nope", None, b"{}", [], 0, 0))
    assert out.reason == "unknown_topic"


def test_a_single_subscriber_target_is_kept_for_flow_control(normalizer: Normalizer) -> None:
    given = [(h.ONLY, b"search-indexer")]  # a CDC snapshot for one new subscriber
    out = _accept(normalizer.normalize(TOPIC, None, json.dumps(V1).encode(), given, 0, 0))
    assert dict(out.headers)[h.ONLY] == b"search-indexer"
