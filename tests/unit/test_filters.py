"""Subscriber filters: CEL compiled once, evaluated over payload and metadata, never crashing."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.filters import (
    MATCH,
    NO_MATCH,
    CompiledFilter,
    FilterError,
    Verdict,
    compile_filter,
    filter_problem,
    meta_from_headers,
)
from pipeline.filters.cel import MAX_LENGTH, NATIVE_FUNCTIONS
from pipeline.filters.values import MAX_DEPTH, CelValueError, to_cel
from pipeline.topology import TopologyError, load_topology
from tests.fixtures.topologies import REPO, minimal, write_topology

THUMBS = "size < 100000000 && mime_type.startsWith('image/')"
META = {"type": "file.uploaded", "id": "01J0", "attempt": 1}


def test_the_design_example_filters_images_under_100_mb() -> None:
    f = compile_filter(THUMBS)
    assert f.check({"size": 12_345, "mime_type": "image/png"}, META) == MATCH
    assert f.matches({"size": 12_345, "mime_type": "image/png"}, META) is True
    assert f.check({"size": 12_345, "mime_type": "text/plain"}, META) == NO_MATCH
    assert f.check({"size": 100_000_000, "mime_type": "image/png"}, META) == NO_MATCH
    assert f.variables == {"size", "mime_type"}


@given(size=st.integers(-(2**63), 2**63 - 1), mime=st.text(max_size=20))
def test_the_design_example_agrees_with_python(size: int, mime: str) -> None:
    f = compile_filter(THUMBS)
    expected = size < 100_000_000 and mime.startswith("image/")
    assert f.check({"size": size, "mime_type": mime}, META) == verdict_of(expected)


def verdict_of(matched: bool) -> Verdict:
    return MATCH if matched else NO_MATCH


@pytest.mark.parametrize(
    ("expression", "line", "column", "words"),
    [
        ("size <", 1, 7, "mismatched input '<EOF>'"),
        ("a &&& b", 1, 5, "token recognition error"),
        ("size > 1 &&\n  (", 2, 4, "mismatched input"),
        ("a.?b", 1, 2, "unsupported syntax"),
        ("", 1, 1, "mismatched input '<EOF>'"),
    ],
)
def test_syntax_errors_carry_the_position(
    expression: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    error = info.value
    assert isinstance(error, ConfigError)
    assert (error.line, error.column) == (line, column)
    assert words in error.reason
    assert "Failed to parse" not in str(error)  # the library's preamble is gone
    assert "\n" not in str(error)  # so is its caret excerpt: one line per topology problem
    where = f"column {column}" if line == 1 else f"line {line}, column {column}"
    assert error.reason.startswith(where)


def test_a_misspelt_function_does_not_compile() -> None:
    with pytest.raises(FilterError, match=r"unknown function 'startswith' \(did you mean "):
        compile_filter("mime_type.startswith('image/')")
    with pytest.raises(FilterError, match="unknown function 'lowerAscii'"):
        compile_filter("name.lowerAscii() == 'x'")  # cel-go's strings extension, not native


def test_overlong_expressions_are_refused_before_the_library_sees_them() -> None:
    longest = "1" + "+1" * ((MAX_LENGTH - 5) // 2) + " > 0"
    assert MAX_LENGTH - 2 <= len(longest) <= MAX_LENGTH
    assert compile_filter(longest).matches({}, {})
    with pytest.raises(FilterError, match=f"longer than {MAX_LENGTH}"):
        compile_filter("1" + "+1" * MAX_LENGTH + " > 0")


# One call per allowed function: every name compile_filter lets through must really be native.
NATIVE_SAMPLES = {
    "size": "size('ab') == 2 && 'ab'.size() == 2",
    "contains": "'abc'.contains('b')",
    "startsWith": "'abc'.startsWith('a')",
    "endsWith": "'abc'.endsWith('c')",
    "matches": "'abc'.matches('^a.c$')",
    "dyn": "dyn(1) == 1",
    "type": "type(1) == int",
    "int": "int('3') == 3",
    "uint": "uint(3) == 3u",
    "double": "double(1) == 1.0",
    "string": "string(1) == '1'",
    "bytes": "bytes('a') == b'a'",
    "timestamp": "timestamp('2024-01-02T03:04:05Z') > timestamp('2024-01-01T00:00:00Z')",
    "duration": "duration('90s') == duration('1m30s')",
    "getFullYear": "ts.getFullYear() == 2024",
    "getMonth": "ts.getMonth() == 0",
    "getDayOfYear": "ts.getDayOfYear() == 1",
    "getDayOfMonth": "ts.getDayOfMonth() == 1",
    "getDate": "ts.getDate() == 2",
    "getDayOfWeek": "ts.getDayOfWeek() == 2",
    "getHours": "ts.getHours() == 3",
    "getMinutes": "ts.getMinutes() == 4",
    "getSeconds": "ts.getSeconds() == 5",
    "getMilliseconds": "ts.getMilliseconds() == 6",
}


def test_every_allowed_function_is_native() -> None:
    assert set(NATIVE_SAMPLES) == NATIVE_FUNCTIONS
    ts = datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    for name, expression in NATIVE_SAMPLES.items():
        assert compile_filter(expression).check({"ts": ts}, {}) == MATCH, name


def test_macros_and_operators_compile() -> None:
    f = compile_filter(
        "has(payload.tags) && tags.exists(t, t == 'x') && tags.all(t, size(t) > 0)"
        " && tags.map(t, t + '!').filter(t, t != '').size() == 2 && 'x' in tags"
        " && !(size % 2 == 1) && (size > 1 ? true : false) && -size < 0"
    )
    assert f.matches({"tags": ["x", "y"], "size": 4}, {})


@pytest.mark.parametrize(
    ("expression", "payload", "reason"),
    [
        (THUMBS, {"size": 1}, "no field 'mime_type' in the payload"),
        ("payload.owner.name == 'a'", {"owner": {}}, "no key 'name' in a map"),
        ("size + 'a' == 1", {"size": 1}, "No such overload"),
        ("size / 0 == 1", {"size": 1}, "division by zero"),
        ("tags[3] == 'x'", {"tags": []}, "index out of bounds"),
        ("size + 1 > 0", {"size": 2**63 - 1}, "overflow"),
        ("size", {"size": 1}, "the filter gave int, not bool"),
        ("mime_type", {"mime_type": "image/png"}, "the filter gave str, not bool"),
        ("blob == 1", {"blob": object()}, "a object value, which has no CEL type"),
    ],
)
def test_errors_and_non_bools_do_not_match_and_say_why(
    expression: str, payload: dict[str, object], reason: str
) -> None:
    verdict = compile_filter(expression).check(payload, META)
    assert not verdict
    assert verdict.matched is False
    assert verdict.reason is not None
    assert reason in verdict.reason
    assert compile_filter(expression).matches(payload, META) is False


def test_cel_error_semantics_let_a_decided_and_or_win() -> None:
    # CEL's && and || are commutative over errors: false && error is false, not an error.
    assert compile_filter("missing > 1 || size == 1").check({"size": 1}, {}) == MATCH
    assert compile_filter("missing > 1 && size == 2").check({"size": 1}, {}) == NO_MATCH


def test_payload_fields_are_variables_and_payload_and_meta_are_maps() -> None:
    f = compile_filter(
        "size == 5 && payload.size == 5 && meta.type == 'file.uploaded' && meta.attempt == 1"
    )
    assert f.matches({"size": 5}, META)
    assert not f.matches({"size": 5}, {**META, "attempt": 2})


def test_payload_and_meta_win_over_fields_of_those_names() -> None:
    payload = {"payload": "shadowed", "meta": 1, "size": 5}
    f = compile_filter("payload.size == 5 && meta.type == 'file.uploaded'")
    assert f.matches(payload, META)
    assert compile_filter("payload.payload == 'shadowed'").matches(payload, META)


def test_only_the_payload_fields_a_filter_selects_are_converted() -> None:
    selected = compile_filter("payload.size > 1 && meta.type == 'x'")
    assert selected.fields == {"payload": frozenset({"size"}), "meta": frozenset({"type"})}
    # Fields no expression reads may even have no CEL type.
    assert selected.matches({"size": 2, "opaque": object()}, {"type": "x", "odd": object()})
    whole = compile_filter("'size' in payload && payload['size'] > 1 && payload.size() == 2")
    assert whole.fields == {"payload": None}
    assert whole.matches({"size": 2, "other": 1}, {})


EXPRESSIONS = [
    "payload.size > 1",
    "has(payload.size)",
    "has(payload.size) && payload.size > 1",
    "'size' in payload",
    "payload.size > 1 || size(payload) > 1",
    "payload == {'size': 2}",
    "meta.type == 'a' || payload.other == 'b'",
]


@given(
    expression=st.sampled_from(EXPRESSIONS),
    payload=st.dictionaries(
        st.sampled_from(["size", "other", "meta"]),
        st.one_of(st.integers(-5, 5), st.text(max_size=3)),
    ),
    kind=st.sampled_from(["a", "b"]),
)
def test_selecting_fields_never_changes_a_verdict(
    expression: str, payload: dict[str, object], kind: str
) -> None:
    f = compile_filter(expression)
    unprojected = CompiledFilter(f.source, f.program, f.variables, {})
    assert (
        f.check(payload, {"type": kind}).matched
        == unprojected.check(payload, {"type": kind}).matched
    )


def test_reads_payload_tells_whether_decoding_is_needed() -> None:
    assert not compile_filter("meta.type == 'file.uploaded'").reads_payload
    assert compile_filter("meta.type == 'x' && size > 1").reads_payload
    assert compile_filter("payload.size > 1").reads_payload


class Colour(Enum):
    RED = "r"


AVRO_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {"name": "ident", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "blob", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 2}},
        {"name": "colour", "type": {"type": "enum", "name": "C", "symbols": ["RED", "BLUE"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "labels", "type": {"type": "map", "values": "long"}},
        {"name": "maybe", "type": ["null", "double"]},
        {
            "name": "owner",
            "type": {"type": "record", "name": "Owner", "fields": [{"name": "n", "type": "int"}]},
        },
    ],
}


def avro_roundtrip(record: dict[str, object]) -> dict[str, object]:
    schema = fastavro.parse_schema(AVRO_SCHEMA)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert isinstance(decoded, dict)
    return decoded


def test_decoded_avro_values_are_usable_in_filters() -> None:
    ident = uuid.uuid4()
    payload = avro_roundtrip(
        {
            "at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
            "local": datetime(2024, 5, 6, 7, 8, 9),
            "day": date(2024, 5, 6),
            "clock": time(13, 30),
            "amount": Decimal("12.50"),
            "ident": str(ident),
            "blob": b"\x00\xff",
            "digest": b"ab",
            "colour": "BLUE",
            "tags": ["a", "b"],
            "labels": {"x": 1},
            "maybe": None,
            "owner": {"n": 7},
        }
    )
    assert isinstance(payload["day"], date)  # fastavro's logical types, as the frontend decodes
    checks = [
        "at == timestamp('2024-05-06T07:08:09Z') && at.getHours() == 7",
        "local == timestamp('2024-05-06T07:08:09Z')",  # local timestamps read as UTC
        "day == timestamp('2024-05-06T00:00:00Z') && day < at",
        "clock == duration('13h30m') && clock > duration('12h')",
        "amount == 12.5 && amount > 12.0",
        f"ident == '{ident}'",
        "blob == b'\\x00\\xff' && size(blob) == 2 && digest == b'ab'",
        "colour == 'BLUE'",
        "tags == ['a', 'b'] && labels.x == 1 && labels['x'] == 1",
        "maybe == null && owner.n == 7 && payload.owner.n == 7",
    ]
    for expression in checks:
        assert compile_filter(expression).check(payload, META) == MATCH, expression


def test_python_values_without_a_native_cel_type_are_converted() -> None:
    assert to_cel(Colour.RED) == "RED"
    assert to_cel(bytearray(b"x")) == b"x"
    assert to_cel(memoryview(b"x")) == b"x"
    assert to_cel((1, {2})) == [1, [2]]
    assert to_cel(frozenset({"a"})) == ["a"]
    assert to_cel(time(0, 0, 1, 500)) == timedelta(seconds=1, microseconds=500)
    assert to_cel({"k": date(1970, 1, 2)}) == {"k": datetime(1970, 1, 2, tzinfo=UTC)}
    with pytest.raises(CelValueError):
        to_cel(1j)


def test_deep_values_do_not_match_instead_of_crashing() -> None:
    deep: list[object] = []
    for _ in range(MAX_DEPTH * 400):  # deep enough to overflow the library's native stack
        deep = [deep]
    verdict = compile_filter("size(nested) == 1").check({"nested": deep}, {})
    assert not verdict
    assert verdict.reason is not None
    assert f"nested deeper than {MAX_DEPTH}" in verdict.reason


def test_meta_from_headers() -> None:
    headers = {
        "msm.type": b"file.uploaded",
        "msm.id": b"01J0",
        "msm.key": b"f-1",
        "msm.published_at": b"1700000000000",
        "msm.deliver_at": b"1700000060000",
        "msm.priority": b"high",
        "unrelated": b"x",
    }
    meta = meta_from_headers(headers)
    assert meta == {
        "type": "file.uploaded",
        "id": "01J0",
        "key": "f-1",
        "priority": "high",
        "published_at": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        "deliver_at": datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC),
        "attempt": 1,
    }
    assert meta_from_headers({"msm.attempt": b"3"}) == {"attempt": 3}
    f = compile_filter("meta.published_at < meta.deliver_at && meta.key.startsWith('f-')")
    assert f.matches({}, meta)


def test_filter_problem_is_none_for_good_or_non_string_filters() -> None:
    assert filter_problem(THUMBS) is None
    assert filter_problem(None) is None
    assert filter_problem(3) is None  # a type error, which the model reports
    problem = filter_problem("size <")
    assert problem is not None
    assert problem.startswith("filter 'size <': column 7: ")


def test_topology_validate_reports_a_filter_that_does_not_compile(tmp_path: Path) -> None:
    doc = minimal()
    doc["subscribers"]["thumbnailer"]["filter"] = "size < && mime_type.startsWith('image/')"
    doc["subscribers"]["indexer"]["filter"] = "path.endswith('.txt')"
    doc["events"]["thing.created"]["partitions"] = 0  # reported with them, not instead
    with pytest.raises(TopologyError) as info:
        load_topology(write_topology(tmp_path, doc))
    by_path = {p.path: p for p in info.value.problems}
    bad = by_path["subscribers.thumbnailer.filter"]
    assert "column 8" in bad.found
    assert bad.expected.startswith("a CEL expression")
    assert "unknown function 'endswith'" in by_path["subscribers.indexer.filter"].found
    assert """events["thing.created"].partitions""" in by_path


def test_topology_with_good_filters_loads(tmp_path: Path) -> None:
    doc = minimal()
    doc["subscribers"]["thumbnailer"]["filter"] = "size > 1 && meta.type == 'thing.created'"
    topology = load_topology(write_topology(tmp_path, doc))
    assert topology.subscribers["thumbnailer"].filter is not None
    example = load_topology(REPO / "topology.yaml")
    for spec in example.subscribers.values():
        if spec.filter is not None:
            compile_filter(spec.filter)
