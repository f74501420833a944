"""Avro schema files: loading, canonical form, fingerprints and the versions of one event.

A schema is identified on the wire by the CRC-64-AVRO (Rabin) fingerprint of its Parsing Canonical
Form, as in Avro single-object encoding, so a producer on an old schema version can still be decoded
after the topology moved on. All of that is computed once, here, when the topology is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro.schema

from pipeline.avro.compatibility import check_compatibility
from pipeline.errors import ConfigError

__all__ = [
    "EventSchemas",
    "LoadedSchema",
    "SchemaError",
    "check_compatibility",
    "crc64_avro",
    "load_schema",
    "parse_schema",
]

ParsedSchema = dict[str, Any] | list[Any] | str
"""A schema as fastavro.parse_schema returns it (names expanded to full names)."""


class SchemaError(ConfigError):
    """A schema file is missing, not JSON, not a valid Avro schema, or breaks compatibility."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


@dataclass(frozen=True)
class LoadedSchema:
    """One parsed schema with its identity; pass ``parsed`` to fastavro readers and writers."""

    parsed: ParsedSchema = field(repr=False, compare=False)
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as in Avro single-object encoding
    named: Mapping[str, dict[str, Any]] = field(repr=False, compare=False)  # full name -> type
    source: str = "<inline>"  # the file it came from, for messages

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def name(self) -> str | None:
        """The full name of the top-level type (``msm.events.FileUploaded``), if it is named."""
        if isinstance(self.parsed, dict) and isinstance(self.parsed.get("name"), str):
            return str(self.parsed["name"])
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        """Top-level field names when the schema is a record, else empty."""
        if isinstance(self.parsed, dict) and self.parsed.get("type") == "record":
            return tuple(str(f["name"]) for f in self.parsed["fields"])
        return ()


def crc64_avro(data: bytes) -> bytes:
    """The Avro spec's 64-bit Rabin fingerprint of ``data``, as 8 little-endian bytes."""
    return bytes.fromhex(fastavro.schema.fingerprint(data.decode("utf-8"), "CRC-64-AVRO"))


def parse_schema(definition: ParsedSchema, source: str = "<inline>") -> LoadedSchema:
    """Parse a schema given as JSON-like data; raises SchemaError naming ``source``."""
    named: dict[str, dict[str, Any]] = {}
    try:
        parsed = fastavro.schema.parse_schema(definition, named_schemas=named)
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    # fastavro raises SchemaParseException, UnknownType, and plain KeyError/TypeError/ValueError
    # for malformed input; all of them mean the same thing to the user.
    except Exception as exc:
        raise SchemaError(source, f"not a valid Avro schema: {_describe(exc)}") from exc
    return LoadedSchema(
        parsed=parsed,
        canonical=canonical,
        fingerprint=crc64_avro(canonical.encode("utf-8")),
        named=named,
        source=source,
    )


def load_schema(path: Path | str) -> LoadedSchema:
    """Read and parse one ``.avsc`` file; raises SchemaError with the path in the message."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(source, "schema file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(source, f"cannot read schema file: {exc}") from exc
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            source, f"not JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    return parse_schema(definition, source)


@dataclass(frozen=True)
class EventSchemas:
    """The current schema of one event plus every older version it still accepts.

    ``versions`` maps fingerprint -> schema and includes the current one; ingress looks writers
    up here and decodes with the current schema as reader.
    """

    current: LoadedSchema
    versions: Mapping[bytes, LoadedSchema]

    @classmethod
    def load(cls, current: Path | str, previous: Sequence[Path | str] = ()) -> EventSchemas:
        """Load the files and require every previous version to be readable by the current one."""
        schema = load_schema(current)
        versions = {schema.fingerprint: schema}
        for path in previous:
            old = load_schema(path)
            problems = check_compatibility(schema, old)
            if problems:
                raise SchemaError(
                    schema.source,
                    f"cannot read data written with {old.source}: " + "; ".join(problems),
                )
            versions.setdefault(old.fingerprint, old)
        return cls(current=schema, versions=versions)

    def get(self, fingerprint: bytes) -> LoadedSchema | None:
        return self.versions.get(fingerprint)

    def by_hex(self, fingerprint_hex: str) -> LoadedSchema | None:
        """Look a version up by the hex form carried in the ``msm.schema`` header."""
        try:
            return self.versions.get(bytes.fromhex(fingerprint_hex))
        except ValueError:
            return None


def _describe(exc: Exception) -> str:
    if type(exc).__name__ == "UnknownType":
        return f"unknown type {exc}"
    return str(exc) or type(exc).__name__
