"""Backward compatibility of Avro schemas: can a reader schema read what a writer schema wrote?

Follows the schema resolution rules of the Avro specification (the same verdicts as the Java and
Python reference checkers, tested against ``avro.compatibility``), but reports each problem with
the field path that causes it, so a failed ``msm topology validate`` says which field to fix.
One deliberate difference from the Python reference: record and enum aliases are resolved
against the namespace of the aliased type, as the specification says and Java does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_COMPLEX = frozenset({"record", "enum", "fixed", "array", "map", "error"})
# writer type -> reader types that may read it (Avro "promotions")
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class SchemaLike(Protocol):
    """What the checker needs: a fastavro-parsed schema and its named types by full name."""

    @property
    def parsed(self) -> Any: ...
    @property
    def named(self) -> Mapping[str, dict[str, Any]]: ...


def check_compatibility(reader: SchemaLike, writer: SchemaLike) -> list[str]:
    """Problems that stop ``reader`` from reading data written with ``writer``; empty if none.

    Each problem starts with the path of the field concerned (``meta.size``; ``[]`` for array
    items, ``{}`` for map values, ``<root>`` for the top level).
    """
    return _Checker(reader.named, writer.named).check(reader.parsed, writer.parsed, "")


class _Checker:
    def __init__(
        self, reader_named: Mapping[str, dict[str, Any]], writer_named: Mapping[str, dict[str, Any]]
    ) -> None:
        self._reader_named = reader_named
        self._writer_named = writer_named
        self._in_progress: set[tuple[str, str]] = set()  # recursive types: assume compatible

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = _resolve(reader, self._reader_named)
        writer = _resolve(writer, self._writer_named)
        if isinstance(writer, list):
            return [p for branch in writer for p in self.check(reader, branch, path)]
        if isinstance(reader, list):
            if any(not self.check(branch, writer, path) for branch in reader):
                return []
            return [
                f"{path or '<root>'}: the reader's union {_describe(reader)} has no branch "
                f"that can read the writer's {_describe(writer)}"
            ]
        rkind, wkind = _kind(reader), _kind(writer)
        if rkind != wkind:
            if rkind in PROMOTIONS.get(wkind, frozenset()):
                return []
            return [
                f"{path or '<root>'}: the writer's {_describe(writer)} cannot be read as "
                f"{_describe(reader)}"
            ]
        if rkind in PRIMITIVES:
            return []
        if rkind == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]")
        if rkind == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}")
        problems = _check_name(reader, writer, path)
        if rkind == "fixed" and reader["size"] != writer["size"]:
            problems.append(
                f"{path or '<root>'}: fixed {reader['name']} has size {reader['size']} "
                f"but the writer's has size {writer['size']}"
            )
        if rkind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                problems.append(
                    f"{path or '<root>'}: enum {reader['name']} lacks the writer's symbols "
                    f"{', '.join(missing)} and has no default symbol"
                )
        if rkind in ("record", "error"):
            problems.extend(self._check_fields(reader, writer, path))
        return problems

    def _check_fields(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        pair = (reader["name"], writer["name"])
        if pair in self._in_progress:
            return []
        self._in_progress.add(pair)
        try:
            writer_fields = {f["name"]: f for f in writer["fields"]}
            problems: list[str] = []
            for rfield in reader["fields"]:
                fpath = f"{path}.{rfield['name']}" if path else rfield["name"]
                names = [rfield["name"], *rfield.get("aliases", ())]
                wfield = next((writer_fields[n] for n in names if n in writer_fields), None)
                if wfield is not None:
                    problems.extend(self.check(rfield["type"], wfield["type"], fpath))
                elif "default" not in rfield:
                    problems.append(
                        f"{fpath}: field {rfield['name']!r} is not in the writer's schema "
                        f"and has no default in the reader's"
                    )
            return problems
        finally:
            self._in_progress.discard(pair)


def _resolve(schema: Any, named: Mapping[str, dict[str, Any]]) -> Any:
    """Follow name references and unwrap ``{"type": "int", ...}`` down to a concrete schema."""
    while True:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            schema = named[schema]
        elif isinstance(schema, dict) and not (
            isinstance(schema.get("type"), str) and schema["type"] in _COMPLEX
        ):
            schema = schema["type"]
        else:
            return schema


def _kind(schema: Any) -> str:
    return schema if isinstance(schema, str) else str(schema["type"])


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(s) for s in schema) + "]"
    if isinstance(schema, dict) and "name" in schema:
        return f"{schema['type']} {schema['name']}"
    return _kind(schema)


def _check_name(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    """Same unqualified name, or the writer's full name among the reader's aliases."""
    rname, wname = str(reader["name"]), str(writer["name"])
    if rname.rsplit(".", 1)[-1] == wname.rsplit(".", 1)[-1]:
        return []
    namespace = rname.rpartition(".")[0]
    aliases = {
        a if "." in a or not namespace else f"{namespace}.{a}" for a in reader.get("aliases", ())
    }
    if wname in aliases:
        return []
    return [
        f"{path or '<root>'}: the reader's {reader['type']} is named {rname} but the writer's "
        f"is {wname} (add {wname!r} to the reader's aliases if it was renamed)"
    ]
