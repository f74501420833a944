"""Avro single-object encoding, the format of events on ingress topics.

Layout (Avro specification, "Single-object encoding"): the marker ``C3 01``, the 8-byte
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form (little-endian), then the
Avro binary body. The fingerprint lets ingress read data written with an older schema version
and resolve it to the current one. Every failure is a :class:`WireError` with a stable ``code``
that the frontend puts on ``msm.rejected``; none is retriable (the bytes will not change).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import ClassVar

from fastavro import schemaless_reader, schemaless_writer
from fastavro.types import Schema

from pipeline.avro.schemas import EventSchemas, LoadedSchema
from pipeline.errors import MSMError

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
CONTENT_TYPE = "avro/binary"
_PADDING = 16


class WireError(MSMError):
    """Bytes that are not a readable single-object encoded event; ``code`` says why."""

    code: ClassVar[str] = "undecodable"


class BadMarkerError(WireError):
    code = "bad_marker"


class UnknownFingerprintError(WireError):
    code = "unknown_fingerprint"

    def __init__(self, fingerprint: bytes, known: list[str]) -> None:
        self.fingerprint = fingerprint
        super().__init__(
            f"writer schema {fingerprint.hex()} is not a known version (known: {', '.join(known)})"
        )


class TruncatedError(WireError):
    code = "truncated"


class UndecodableError(WireError):
    code = "undecodable"


class TrailingBytesError(WireError):
    code = "trailing_bytes"


class UnencodableError(WireError):
    """A record fastavro cannot write with the schema: validate with records.to_avro first."""

    code = "unencodable"


def header(schema: LoadedSchema) -> bytes:
    return MARKER + schema.fingerprint


def encode(schema: LoadedSchema, record: object) -> bytes:
    """Single-object bytes for a record already in fastavro's values (see records.to_avro)."""
    out = io.BytesIO()
    out.write(MARKER)
    out.write(schema.fingerprint)
    try:
        schemaless_writer(out, schema.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise UnencodableError(f"cannot encode with {schema.source}: {exc}") from exc
    return out.getvalue()


def fingerprint_of(data: bytes) -> bytes:
    """The writer fingerprint of single-object bytes, after checking the marker."""
    if data[:2] != MARKER:
        if len(data) < 2 and MARKER.startswith(data):
            raise TruncatedError(f"{len(data)} bytes, shorter than the 2-byte marker")
        raise BadMarkerError(
            f"not Avro single-object encoding: starts with {data[:2].hex() or 'nothing'}, "
            f"expected {MARKER.hex()}"
        )
    if len(data) < HEADER_SIZE:
        raise TruncatedError(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    return bytes(data[2:HEADER_SIZE])


def decode(
    data: bytes,
    schemas: EventSchemas | Mapping[bytes, LoadedSchema],
    reader: LoadedSchema | None = None,
) -> object:
    """Read single-object bytes, resolving the writer's version to ``reader``.

    ``reader`` defaults to the event's current schema when ``schemas`` is an EventSchemas, and to
    the writer's own schema when it is a plain fingerprint -> schema mapping.
    """
    versions = schemas.versions if isinstance(schemas, EventSchemas) else schemas
    if reader is None and isinstance(schemas, EventSchemas):
        reader = schemas.current
    fingerprint = fingerprint_of(data)
    writer = versions.get(fingerprint)
    if writer is None:
        raise UnknownFingerprintError(fingerprint, [f.hex() for f in versions])
    return decode_body(data, writer, reader, offset=HEADER_SIZE)


def decode_body(
    data: bytes, writer: LoadedSchema, reader: LoadedSchema | None = None, *, offset: int = 0
) -> object:
    """Read one Avro binary datum from ``data[offset:]``, which it must fill exactly."""
    same = reader is None or reader.fingerprint == writer.fingerprint
    resolve_to = None if reader is None or same else reader.parsed
    source = io.BytesIO(data)
    source.seek(offset)
    try:
        value = schemaless_reader(source, writer.parsed, resolve_to)
    except EOFError as exc:
        raise TruncatedError(f"body ends early ({len(data) - offset} bytes): {exc}") from exc
    except Exception as exc:
        # fastavro's reader raises IndexError, UnicodeDecodeError, ValueError, its own
        # SchemaResolutionError ... for corrupt input, and sometimes IndexError for input that
        # merely ends early (in a varint): tell them apart by reading on past the end.
        if source.tell() >= len(data) and _ends_early(data, offset, writer, resolve_to):
            raise TruncatedError(f"body ends early ({len(data) - offset} bytes)") from exc
        raise UndecodableError(f"not a valid body for {writer.source}: {exc!r}") from exc
    end = source.tell()
    if end != len(data):
        raise TrailingBytesError(f"{len(data) - end} bytes left after the record")
    return value


def _ends_early(data: bytes, offset: int, writer: LoadedSchema, reader: Schema | None) -> bool:
    """Whether a read that failed at the end gets past the end once the data is padded."""
    padded = io.BytesIO(data + bytes(_PADDING))
    padded.seek(offset)
    try:
        schemaless_reader(padded, writer.parsed, reader)
    except Exception:
        return padded.tell() > len(data)
    return True
