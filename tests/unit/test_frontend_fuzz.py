"""Bad input at the frontend, generated (hypothesis): every record is accepted or rejected with
a reason, never a crash or a hang, and a good event right after it is still accepted."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import headers as h
from pipeline.agents.frontend_normalize import Accepted, Normalizer, Rejected
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.topology import Topology, load_topology
from tests.unit.test_frontend_normalize import NOW, REPO, TOPIC, V1

GOOD = V1
# Each example must finish well inside this: a decoder that hangs fails the test.
FAST = settings(
    max_examples=300, deadline=500, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def topology() -> Topology:
    return load_topology(REPO / "topology.yaml")


@pytest.fixture(scope="module")
def normalizer(topology: Topology) -> Normalizer:
    return Normalizer(topology, clock_ms=lambda: NOW)


def check(normalizer: Normalizer, value: bytes, headers: list[tuple[str, bytes | None]]) -> None:
    out = normalizer.normalize(TOPIC, b"k", value, headers, 0, 7)
    if isinstance(out, Rejected):
        assert out.reason, "every reject has a reason"
        assert dict(out.headers)[h.REJECT_REASON] == out.reason.encode()
        assert len(out.value) + sum(len(k) + len(v) for k, v in out.headers) <= normalizer.budget
    else:
        assert isinstance(out, Accepted)
        assert wire.fingerprint_of(out.value) is not None
    good = normalizer.normalize(TOPIC, b"k", json.dumps(GOOD).encode(), [], 0, 8)
    assert isinstance(good, Accepted), "the next good event still flows"


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes(normalizer: Normalizer, value: bytes) -> None:
    check(normalizer, value, [])


@FAST
@given(st.binary(max_size=512), st.integers(0, 300))
def test_avro_marker_then_anything_or_a_truncated_record(
    normalizer: Normalizer, tail: bytes, cut: int
) -> None:
    check(normalizer, wire.MARKER + tail, [])
    v2 = load_schema(REPO / "schemas/file_uploaded.v2.avsc")
    whole = wire.encode(v2, {**GOOD, "sha256": None})
    check(normalizer, whole[: min(cut, len(whole) - 1)], [])


@FAST
@given(st.binary(min_size=8, max_size=8), st.binary(max_size=200))
def test_unknown_fingerprints_are_rejected(
    normalizer: Normalizer, fingerprint: bytes, body: bytes
) -> None:
    out = normalizer.normalize(TOPIC, None, wire.MARKER + fingerprint + body, [], 0, 1)
    known = {s.fingerprint for s in load_schema_versions()}
    if fingerprint not in known:
        assert isinstance(out, Rejected)
        assert out.reason == "unknown_fingerprint"


def load_schema_versions() -> list[Any]:
    return [load_schema(REPO / f"schemas/file_uploaded.v{n}.avsc") for n in (1, 2)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@FAST
@given(
    st.dictionaries(
        st.sampled_from([*GOOD, "sha256", "extra", ""]) | st.text(max_size=10),
        json_values,
        max_size=10,
    )
)
def test_json_documents_with_wrong_types_and_fields(
    normalizer: Normalizer, document: dict[str, Any]
) -> None:
    check(normalizer, json.dumps({**GOOD, **document}).encode(), [])
    check(normalizer, json.dumps(document).encode(), [])


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deeply_nested_json(normalizer: Normalizer, depth: int) -> None:
    check(normalizer, b"[" * depth + b"]" * depth, [])
    check(normalizer, b'{"a":' * depth + b"1" + b"}" * depth, [])


def test_huge_json_is_rejected_by_size_before_parsing(normalizer: Normalizer) -> None:
    huge = json.dumps({**GOOD, "path": "x" * 10_000_000}).encode()
    out = normalizer.normalize(TOPIC, None, huge, [], 0, 1)
    assert isinstance(out, Rejected)
    assert out.reason == "oversize"


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_unicode_edge_cases_in_strings_keys_and_headers(normalizer: Normalizer, text: str) -> None:
    check(normalizer, json.dumps({**GOOD, "path": text, "file_id": text}).encode(), [])
    raw = text.encode("utf-8", "surrogatepass")
    check(
        normalizer,
        json.dumps(GOOD).encode(),
        [(h.EVENT_ID, raw), (h.DELAY, raw), (h.PRIORITY, raw), (h.CONTENT_TYPE, raw)],
    )
    check(normalizer, raw, [])


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from([h.EVENT_ID, h.DELAY, h.DELIVER_AT, h.PRIORITY, "x-other"])
            | st.text(string.printable, max_size=20),
            st.none() | st.binary(max_size=64),
        ),
        max_size=8,
    )
)
def test_arbitrary_headers(normalizer: Normalizer, headers: list[tuple[str, bytes | None]]) -> None:
    check(normalizer, json.dumps(GOOD).encode(), headers)
