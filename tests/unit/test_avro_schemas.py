"""Schema files: canonical form, fingerprints and compatibility, checked against Apache ``avro``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from pipeline.avro.compatibility import PRIMITIVES
from pipeline.avro.schemas import (
    EventSchemas,
    SchemaError,
    check_compatibility,
    crc64_avro,
    load_schema,
    parse_schema,
)
from tests.fixtures.topologies import REPO, SCHEMAS

Json = Any  # JSON schema documents as written in .avsc files


def spec_fingerprint(data: bytes) -> bytes:
    """The Avro specification's 64-bit Rabin fingerprint, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")  # single-object encoding stores it little-endian


SCHEMA_FILES = sorted(REPO.glob("schemas/*.avsc")) + [
    p for p in sorted(SCHEMAS.glob("*.avsc")) if p.name != "not-json.avsc"
]
TRICKY: list[Json] = [
    "int",
    {"type": "string", "logicalType": "uuid"},
    {"type": "map", "values": {"type": "array", "items": "long"}},
    {"type": "fixed", "name": "Hash", "namespace": "x.y", "size": 32, "doc": "ignored"},
    {
        "type": "record",
        "name": "Node",
        "namespace": "a",
        "doc": "docs, defaults and aliases are not part of the canonical form",
        "aliases": ["Old"],
        "fields": [
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "again", "type": "Kind", "default": "A"},
            {"name": "next", "type": ["null", "Node"], "default": None},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    },
]


def without_logical_types(schema: Json) -> Json:
    """The schema with primitives' logicalType annotations removed.

    The spec strips logicalType from the canonical form and writes primitives in their simple
    form ("long"), as Java and fastavro do; avro 1.12 for Python leaves {"type":"long"} behind.
    Comparing without the annotations keeps the reference useful for everything else.
    """
    if isinstance(schema, list):
        return [without_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        if "logicalType" in schema and schema.get("type") in PRIMITIVES:
            return schema["type"]
        return {k: without_logical_types(v) for k, v in schema.items()}
    return schema


def reference_for(schema: Json) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(without_logical_types(schema)))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_file_fingerprints_match_the_reference_and_the_spec(path: Path) -> None:
    loaded = load_schema(path)
    reference = reference_for(json.loads(path.read_text()))
    assert loaded.canonical == reference.canonical_form
    assert loaded.fingerprint == reference.fingerprint()
    assert loaded.fingerprint == spec_fingerprint(loaded.canonical.encode())
    assert loaded.fingerprint_hex == loaded.fingerprint.hex()
    assert len(loaded.fingerprint) == 8


@pytest.mark.parametrize("definition", TRICKY, ids=lambda d: json.dumps(d)[:30])
def test_canonical_form_matches_the_reference(definition: Json) -> None:
    loaded = parse_schema(definition)
    reference = reference_for(definition)
    assert loaded.canonical == reference.canonical_form
    assert (
        loaded.fingerprint == reference.fingerprint() == spec_fingerprint(loaded.canonical.encode())
    )


def test_logical_types_leave_the_simple_primitive_in_the_canonical_form() -> None:
    timestamp = {"type": "long", "logicalType": "timestamp-millis"}
    assert parse_schema(timestamp).canonical == '"long"'
    assert parse_schema(record(field("t", timestamp))).canonical == (
        '{"name":"t.R","type":"record","fields":[{"name":"t","type":"long"}]}'
    )


def test_crc64_of_known_input() -> None:
    assert crc64_avro(b'"int"') == spec_fingerprint(b'"int"')
    assert crc64_avro(b"") == (0xC15D213AA4D7A795).to_bytes(8, "little")


def test_schema_facts() -> None:
    loaded = load_schema(REPO / "schemas" / "file_uploaded.v2.avsc")
    assert loaded.name == "msm.events.FileUploaded"
    assert "file_id" in loaded.field_names
    assert loaded.source.endswith("file_uploaded.v2.avsc")
    assert parse_schema("int").name is None
    assert parse_schema("int").field_names == ()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"absent\.avsc: schema file not found"):
        load_schema(tmp_path / "absent.avsc")
    with pytest.raises(SchemaError, match=r"not-json\.avsc: not JSON at line 2, column 1"):
        load_schema(SCHEMAS / "not-json.avsc")
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]}')
    with pytest.raises(SchemaError, match=r"bad\.avsc: not a valid Avro schema: unknown type"):
        load_schema(bad)
    with pytest.raises(SchemaError, match="not a valid Avro schema: 'symbols'"):
        parse_schema({"type": "enum", "name": "E"})


def test_event_schemas_know_every_version() -> None:
    v1, v2 = SCHEMAS / "thing.v1.avsc", SCHEMAS / "thing.v2.avsc"
    schemas = EventSchemas.load(v2, [v1])
    assert schemas.current.source == str(v2)
    old = load_schema(v1)
    assert set(schemas.versions) == {schemas.current.fingerprint, old.fingerprint}
    assert schemas.get(old.fingerprint) == old
    assert schemas.by_hex(old.fingerprint_hex) == old
    assert schemas.by_hex("not hex") is None
    assert schemas.get(b"\0" * 8) is None


def test_event_schemas_refuse_an_unreadable_old_version() -> None:
    with pytest.raises(SchemaError, match=r"thing\.v3-breaking\.avsc.*thing\.v1\.avsc.*owner"):
        EventSchemas.load(SCHEMAS / "thing.v3-breaking.avsc", [SCHEMAS / "thing.v1.avsc"])


def record(*fields: Json, name: str = "R", **extra: Json) -> Json:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields), **extra}


def field(name: str, type_: Json, **extra: Json) -> Json:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, **extra: Json) -> Json:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


# (id, reader, writer, field path named by our message when incompatible)
PAIRS: list[tuple[str, Json, Json, str | None]] = [
    ("same", record(field("a", "int")), record(field("a", "int")), None),
    (
        "field added with default",
        record(field("a", "int"), field("b", "string", default="x")),
        record(field("a", "int")),
        None,
    ),
    (
        "field added without default",
        record(field("a", "int"), field("b", "string")),
        record(field("a", "int")),
        "b",
    ),
    (
        "field removed",
        record(field("a", "int")),
        record(field("a", "int"), field("b", "int")),
        None,
    ),
    ("int to long", record(field("a", "long")), record(field("a", "int")), None),
    ("long to int", record(field("a", "int")), record(field("a", "long")), "a"),
    ("int to double", record(field("a", "double")), record(field("a", "int")), None),
    ("float to double", record(field("a", "double")), record(field("a", "float")), None),
    ("double to float", record(field("a", "float")), record(field("a", "double")), "a"),
    ("string to bytes", record(field("a", "bytes")), record(field("a", "string")), None),
    ("bytes to string", record(field("a", "string")), record(field("a", "bytes")), None),
    ("string to int", record(field("a", "int")), record(field("a", "string")), "a"),
    ("enum symbol added", enum("A", "B", "C"), enum("A", "B"), None),
    ("enum symbol removed", enum("A"), enum("A", "B"), "<root>"),
    ("enum symbol removed, reader default", enum("A", "Z", default="Z"), enum("A", "B"), None),
    ("record renamed", record(field("a", "int"), name="S"), record(field("a", "int")), "<root>"),
    ("record renamed, full-name alias", record(name="S", aliases=["t.R"]), record(), None),
    ("other namespace", {**record(), "namespace": "u"}, record(), None),
    (
        "nullable reader",
        record(field("a", ["null", "string"], default=None)),
        record(field("a", "string")),
        None,
    ),
    (
        "nullable writer",
        record(field("a", "string")),
        record(field("a", ["null", "string"], default=None)),
        "a",
    ),
    (
        "union widened",
        record(field("a", ["long", "string"])),
        record(field("a", ["int", "string"])),
        None,
    ),
    ("union branch lost", record(field("a", ["int"])), record(field("a", ["int", "string"])), "a"),
    (
        "nested change",
        record(field("m", record(field("size", "int"), name="M"))),
        record(field("m", record(field("size", "string"), name="M"))),
        "m.size",
    ),
    (
        "array items widened",
        {"type": "array", "items": "long"},
        {"type": "array", "items": "int"},
        None,
    ),
    (
        "map values narrowed",
        {"type": "map", "values": "int"},
        {"type": "map", "values": "long"},
        "{}",
    ),
    (
        "fixed size",
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "fixed", "name": "F", "size": 8},
        "<root>",
    ),
    ("field alias", record(field("b", "int", aliases=["a"])), record(field("a", "int")), None),
    (
        "recursive, field added",
        record(
            field("v", "int"),
            field("next", ["null", "R"], default=None),
            field("w", "int", default=0),
        ),
        record(field("v", "int"), field("next", ["null", "R"], default=None)),
        None,
    ),
    (
        "recursive, type changed",
        record(field("v", "long"), field("next", ["null", "R"], default=None)),
        record(field("v", "string"), field("next", ["null", "R"], default=None)),
        "v",
    ),
    (
        "named type reused",
        record(field("e", enum("A", "B")), field("f", "E")),
        record(field("e", enum("A", "B", "C")), field("f", "E")),
        "e",
    ),
    ("record vs map", record(), {"type": "map", "values": "int"}, "<root>"),
    (
        "logical type ignored",
        record(field("t", {"type": "long", "logicalType": "timestamp-millis"})),
        record(field("t", "long")),
        None,
    ),
]


@pytest.mark.parametrize(
    ("reader", "writer", "where"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS]
)
def test_compatibility_agrees_with_the_reference(
    reader: Json, writer: Json, where: str | None
) -> None:
    ours = check_compatibility(parse_schema(reader), parse_schema(writer))
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro's own
    reference = checker.get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    assert (not ours) == (reference.compatibility is SchemaCompatibilityType.compatible), ours
    if where is None:
        assert ours == []
    else:
        assert any(problem.startswith(f"{where}:") for problem in ours), ours


def test_aliases_resolve_against_the_namespace_as_the_spec_says() -> None:
    # The Python reference compares the alias "R" with the writer's full name "t.R" and refuses;
    # the spec (and Java) resolve the alias in the reader's namespace to "t.R" and accept.
    assert (
        check_compatibility(parse_schema(record(name="S", aliases=["R"])), parse_schema(record()))
        == []
    )


def test_messages_explain_the_problem() -> None:
    (missing,) = check_compatibility(
        parse_schema(record(field("a", "int"), field("b", "string"))),
        parse_schema(record(field("a", "int"))),
    )
    assert (
        missing == "b: field 'b' is not in the writer's schema and has no default in the reader's"
    )
    (narrowed,) = check_compatibility(
        parse_schema(record(field("a", "int"))), parse_schema(record(field("a", "long")))
    )
    assert narrowed == "a: the writer's long cannot be read as int"
    (lost,) = check_compatibility(parse_schema(enum("A")), parse_schema(enum("A", "B")))
    assert "lacks the writer's symbols B" in lost
