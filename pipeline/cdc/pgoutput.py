"""A pure decoder of PostgreSQL's pgoutput logical replication messages, protocol version 1.

Formats: PostgreSQL docs, "Logical Replication Message Formats". Version 1 has no streamed or
two-phase transactions, so those message types are rejected rather than half-decoded. Column
values stay the text PostgreSQL sent: turning them into Python types needs the column's type,
which only the caller knows how to map. Every malformed input raises :class:`DecodeError`
naming the message type and the offset, never ``IndexError`` or ``struct.error``.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from pipeline.cdc.errors import DecodeError

__all__ = [
    "UNCHANGED",
    "Begin",
    "Column",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "Origin",
    "Relation",
    "Truncate",
    "Tuple",
    "TypeInfo",
    "Unchanged",
    "Update",
    "Value",
    "decode",
    "format_lsn",
    "parse_lsn",
]

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_LSN_MAX: Final = 2**64 - 1
_LSN_TEXT = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> ``0x16B374D848``: LSNs compare and subtract only as integers."""
    match = _LSN_TEXT.fullmatch(text.strip())
    if match is None:
        raise DecodeError(f"invalid LSN {text!r}: expected two hex numbers like 16/B374D848")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(lsn: int) -> str:
    """The inverse of :func:`parse_lsn`, spelled as PostgreSQL does (upper case, no padding)."""
    if not 0 <= lsn <= _LSN_MAX:
        raise ValueError(f"an LSN is an unsigned 64-bit integer, not {lsn}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class Unchanged(enum.Enum):
    """A TOASTed value an UPDATE did not touch: PostgreSQL does not resend it ('u')."""

    UNCHANGED = "UNCHANGED"

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED

Value: TypeAlias = str | Unchanged | None
Tuple: TypeAlias = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    """Sent before a relation's first change in a session (and after its schema changes)."""

    oid: int
    namespace: str  # empty for pg_catalog
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A non-built-in type used by a following Relation ('Y')."""

    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relation_oid: int
    new: Tuple


@dataclass(frozen=True, slots=True)
class Update:
    """``old`` is the key ('K', key columns only) or the full old row ('O', REPLICA IDENTITY
    FULL), and absent when the key did not change under the default identity."""

    relation_oid: int
    old: Tuple | None
    old_is_key_only: bool
    new: Tuple


@dataclass(frozen=True, slots=True)
class Delete:
    relation_oid: int
    old: Tuple
    old_is_key_only: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """``pg_logical_emit_message`` output ('M'), sent when the ``messages`` option is on."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)

_U8 = struct.Struct(">B")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")


class _Reader:
    """A cursor over one message that turns every short read into a DecodeError."""

    __slots__ = ("_buf", "_kind", "_pos")

    def __init__(self, buf: bytes, kind: str) -> None:
        self._buf = buf
        self._kind = kind
        self._pos = 1  # past the type byte

    def error(self, detail: str) -> DecodeError:
        return DecodeError(
            f"pgoutput {self._kind} message: {detail} at byte {self._pos} of {len(self._buf)}"
        )

    def _unpack(self, fmt: struct.Struct, what: str) -> int:
        if self._pos + fmt.size > len(self._buf):
            raise self.error(f"truncated {what} ({fmt.size} bytes needed)")
        (value,) = fmt.unpack_from(self._buf, self._pos)
        self._pos += fmt.size
        return int(value)

    def u8(self, what: str) -> int:
        return self._unpack(_U8, what)

    def i16(self, what: str) -> int:
        return self._unpack(_I16, what)

    def i32(self, what: str) -> int:
        return self._unpack(_I32, what)

    def u32(self, what: str) -> int:
        return self._unpack(_U32, what)

    def i64(self, what: str) -> int:
        return self._unpack(_I64, what)

    def u64(self, what: str) -> int:
        return self._unpack(_U64, what)

    def char(self, what: str) -> str:
        return chr(self.u8(what))

    def raw(self, size: int, what: str) -> bytes:
        if size < 0 or self._pos + size > len(self._buf):
            raise self.error(f"truncated {what} ({size} bytes announced)")
        chunk = self._buf[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def text(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"{what} is not UTF-8 ({exc.reason})") from None

    def cstring(self, what: str) -> str:
        end = self._buf.find(b"\0", self._pos)
        if end < 0:
            raise self.error(f"unterminated {what}")
        value = self.text(self._buf[self._pos : end], what)
        self._pos = end + 1
        return value

    def timestamp(self, what: str) -> datetime:
        micros = self.i64(what)
        try:
            return PG_EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            raise self.error(f"{what} {micros} is out of range") from None

    def tuple_data(self, what: str) -> Tuple:
        count = self.i16(f"{what} column count")
        if count < 0:
            raise self.error(f"negative {what} column count {count}")
        values: list[Value] = []
        for index in range(count):
            kind = self.char(f"{what} column {index} kind")
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                size = self.i32(f"{what} column {index} length")
                values.append(self.text(self.raw(size, f"{what} column {index}"), what))
            elif kind == "b":
                raise self.error(f"{what} column {index} is binary; request text format")
            else:
                raise self.error(f"unknown {what} column {index} kind {kind!r}")
        return tuple(values)

    def done(self, message: Message) -> Message:
        if self._pos != len(self._buf):
            raise self.error(f"{len(self._buf) - self._pos} trailing bytes")
        return message


def _begin(r: _Reader) -> Message:
    return r.done(Begin(r.u64("final LSN"), r.timestamp("commit time"), r.u32("xid")))


def _commit(r: _Reader) -> Message:
    flags = r.u8("flags")
    commit_lsn = r.u64("commit LSN")
    end_lsn = r.u64("end LSN")
    return r.done(Commit(flags, commit_lsn, end_lsn, r.timestamp("commit time")))


def _origin(r: _Reader) -> Message:
    return r.done(Origin(r.u64("commit LSN"), r.cstring("origin name")))


def _relation(r: _Reader) -> Message:
    oid = r.u32("relation OID")
    namespace = r.cstring("namespace")
    name = r.cstring("relation name")
    identity = r.char("replica identity")
    if identity not in "dnfi":
        raise r.error(f"unknown replica identity {identity!r}")
    count = r.i16("column count")
    if count < 0:
        raise r.error(f"negative column count {count}")
    columns = []
    for index in range(count):
        flags = r.u8(f"column {index} flags")
        column_name = r.cstring(f"column {index} name")
        type_oid = r.u32(f"column {index} type OID")
        columns.append(
            Column(column_name, type_oid, r.i32(f"column {index} typmod"), bool(flags & 1))
        )
    return r.done(Relation(oid, namespace, name, identity, tuple(columns)))


def _type(r: _Reader) -> Message:
    return r.done(TypeInfo(r.u32("type OID"), r.cstring("namespace"), r.cstring("type name")))


def _insert(r: _Reader) -> Message:
    oid = r.u32("relation OID")
    if (marker := r.char("tuple marker")) != "N":
        raise r.error(f"expected new tuple 'N', got {marker!r}")
    return r.done(Insert(oid, r.tuple_data("new tuple")))


def _update(r: _Reader) -> Message:
    oid = r.u32("relation OID")
    marker = r.char("tuple marker")
    old: Tuple | None = None
    old_is_key_only = marker == "K"
    if marker in ("K", "O"):
        old = r.tuple_data("old tuple")
        marker = r.char("tuple marker")
    if marker != "N":
        raise r.error(f"expected new tuple 'N', got {marker!r}")
    return r.done(Update(oid, old, old_is_key_only, r.tuple_data("new tuple")))


def _delete(r: _Reader) -> Message:
    oid = r.u32("relation OID")
    marker = r.char("tuple marker")
    if marker not in ("K", "O"):
        raise r.error(f"expected old tuple 'K' or 'O', got {marker!r}")
    return r.done(Delete(oid, r.tuple_data("old tuple"), marker == "K"))


def _truncate(r: _Reader) -> Message:
    count = r.i32("relation count")
    if count < 0:
        raise r.error(f"negative relation count {count}")
    options = r.u8("options")
    oids = tuple(r.u32(f"relation {index} OID") for index in range(count))
    return r.done(Truncate(oids, bool(options & 1), bool(options & 2)))


def _message(r: _Reader) -> Message:
    flags = r.u8("flags")
    lsn = r.u64("LSN")
    prefix = r.cstring("prefix")
    content = r.raw(r.i32("content length"), "content")
    return r.done(LogicalMessage(bool(flags & 1), lsn, prefix, content))


_DECODERS: Final[dict[str, tuple[str, Callable[[_Reader], Message]]]] = {
    "B": ("Begin", _begin),
    "C": ("Commit", _commit),
    "O": ("Origin", _origin),
    "R": ("Relation", _relation),
    "Y": ("Type", _type),
    "I": ("Insert", _insert),
    "U": ("Update", _update),
    "D": ("Delete", _delete),
    "T": ("Truncate", _truncate),
    "M": ("Message", _message),
}
_LATER_VERSIONS: Final = {
    "S": "Stream Start",
    "E": "Stream Stop",
    "c": "Stream Commit",
    "A": "Stream Abort",
    "b": "Begin Prepare",
    "P": "Prepare",
    "K": "Commit Prepared",
    "r": "Rollback Prepared",
    "p": "Stream Prepare",
}


def decode(payload: bytes) -> Message:
    """Decode one XLogData payload of a pgoutput stream started with ``proto_version '1'``."""
    if not payload:
        raise DecodeError("empty pgoutput message")
    kind = chr(payload[0])
    if kind in _LATER_VERSIONS:
        raise DecodeError(
            f"pgoutput {_LATER_VERSIONS[kind]} message ({kind!r}) is not part of protocol "
            "version 1: start replication with proto_version '1' and no streaming"
        )
    entry = _DECODERS.get(kind)
    if entry is None:
        raise DecodeError(f"unknown pgoutput message type {kind!r} (byte 0x{payload[0]:02x})")
    name, decoder = entry
    return decoder(_Reader(bytes(payload), name))
