"""pgoutput protocol 1 decoding from payloads built byte by byte, and LSN text round trips."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.cdc.errors import CdcError, DecodeError
from pipeline.cdc.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Unchanged,
    Update,
    Value,
    decode,
    format_lsn,
    parse_lsn,
)

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
WHEN = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
WHEN_US = (WHEN - PG_EPOCH) // timedelta(microseconds=1)


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values: Value) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            assert isinstance(value, str)
            raw = value.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def begin(final_lsn: int = 0x16B374D848, micros: int = WHEN_US, xid: int = 726) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, micros, xid)


def commit(flags: int = 0, lsn: int = 0x100, end: int = 0x130, micros: int = WHEN_US) -> bytes:
    return b"C" + struct.pack(">BQQq", flags, lsn, end, micros)


def relation() -> bytes:
    columns = [(1, "id", 23, -1), (0, "name", 1043, 68), (0, "note", 25, -1)]
    out = b"R" + struct.pack(">I", 16384) + cstr("public") + cstr("users") + b"d"
    out += struct.pack(">h", len(columns))
    for flags, name, type_oid, typmod in columns:
        out += struct.pack(">B", flags) + cstr(name) + struct.pack(">Ii", type_oid, typmod)
    return out


def insert(*values: Value) -> bytes:
    return b"I" + struct.pack(">I", 16384) + b"N" + tuple_data(*values)


def update(old_kind: bytes | None, old: tuple[Value, ...], new: tuple[Value, ...]) -> bytes:
    out = b"U" + struct.pack(">I", 16384)
    if old_kind is not None:
        out += old_kind + tuple_data(*old)
    return out + b"N" + tuple_data(*new)


def delete(kind: bytes, *old: Value) -> bytes:
    return b"D" + struct.pack(">I", 16384) + kind + tuple_data(*old)


def truncate(options: int, *oids: int) -> bytes:
    return (
        b"T" + struct.pack(">iB", len(oids), options) + b"".join(struct.pack(">I", o) for o in oids)
    )


def message(flags: int, lsn: int, prefix: str, content: bytes) -> bytes:
    return (
        b"M" + struct.pack(">BQ", flags, lsn) + cstr(prefix) + struct.pack(">i", len(content))
    ) + content


def origin(lsn: int, name: str) -> bytes:
    return b"O" + struct.pack(">Q", lsn) + cstr(name)


def type_info(oid: int, namespace: str, name: str) -> bytes:
    return b"Y" + struct.pack(">I", oid) + cstr(namespace) + cstr(name)


SAMPLES = [
    begin(),
    commit(),
    relation(),
    insert("1", "ada", None),
    update(None, (), ("1", "ada", UNCHANGED)),
    update(b"K", ("1", None, None), ("2", "ada", "x")),
    update(b"O", ("1", "ada", "x"), ("1", "bob", "x")),
    delete(b"K", "1", None, None),
    delete(b"O", "1", "ada", ""),
    truncate(3, 16384, 16390),
    message(1, 0x1505750, "msm.watermark", b"w-1"),
    origin(0x2A, "upstream"),
    type_info(16400, "public", "mood"),
]


def test_begin() -> None:
    assert decode(begin()) == Begin(final_lsn=0x16B374D848, commit_time=WHEN, xid=726)


def test_timestamps_are_utc_microseconds_since_2000() -> None:
    assert decode(begin(micros=0)) == Begin(0x16B374D848, PG_EPOCH, 726)
    early = decode(begin(micros=-1))
    assert isinstance(early, Begin)
    assert early.commit_time == datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert early.commit_time.utcoffset() == timedelta(0)


def test_timestamp_out_of_range_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"Begin.*commit time"):
        decode(begin(micros=2**63 - 1))


def test_commit() -> None:
    assert decode(commit(flags=0, lsn=0x100, end=0x130)) == Commit(0, 0x100, 0x130, WHEN)


def test_relation() -> None:
    assert decode(relation()) == Relation(
        oid=16384,
        namespace="public",
        name="users",
        replica_identity="d",
        columns=(
            Column("id", 23, -1, key=True),
            Column("name", 1043, 68, key=False),
            Column("note", 25, -1, key=False),
        ),
    )


def test_relation_in_pg_catalog_has_an_empty_namespace() -> None:
    payload = b"R" + struct.pack(">I", 1) + cstr("") + cstr("t") + b"f" + struct.pack(">h", 0)
    assert decode(payload) == Relation(1, "", "t", "f", ())


def test_insert_text_null_and_empty_values() -> None:
    assert decode(insert("1", "", None)) == Insert(16384, ("1", "", None))


def test_values_are_utf8_text() -> None:
    assert decode(insert("Zoë 🐘", "a\x00b")) == Insert(16384, ("Zoë 🐘", "a\x00b"))


def test_update_without_old_tuple_keeps_unchanged_toast() -> None:
    decoded = decode(update(None, (), ("1", "ada", UNCHANGED)))
    assert decoded == Update(16384, None, False, ("1", "ada", UNCHANGED))
    assert isinstance(decoded, Update)
    assert decoded.new[2] is UNCHANGED


def test_update_with_key() -> None:
    assert decode(update(b"K", ("1", None, None), ("2", "ada", "x"))) == Update(
        16384, ("1", None, None), True, ("2", "ada", "x")
    )


def test_update_with_full_old_row() -> None:
    assert decode(update(b"O", ("1", "ada", "x"), ("1", "bob", "x"))) == Update(
        16384, ("1", "ada", "x"), False, ("1", "bob", "x")
    )


def test_delete_key_and_full() -> None:
    assert decode(delete(b"K", "1", None, None)) == Delete(16384, ("1", None, None), True)
    assert decode(delete(b"O", "1", "ada", "")) == Delete(16384, ("1", "ada", ""), False)


@pytest.mark.parametrize(
    ("options", "cascade", "restart"),
    [(0, False, False), (1, True, False), (2, False, True), (3, True, True)],
)
def test_truncate_options(options: int, cascade: bool, restart: bool) -> None:
    assert decode(truncate(options, 16384, 16390)) == Truncate((16384, 16390), cascade, restart)


def test_logical_message_keeps_content_bytes() -> None:
    content = b"\x00\xff binary \x00"
    assert decode(message(1, 0x1505750, "msm.watermark", content)) == LogicalMessage(
        True, 0x1505750, "msm.watermark", content
    )
    assert decode(message(0, 7, "", b"")) == LogicalMessage(False, 7, "", b"")


def test_origin_and_type() -> None:
    assert decode(origin(0x2A, "upstream")) == Origin(0x2A, "upstream")
    assert decode(type_info(16400, "public", "mood")) == TypeInfo(16400, "public", "mood")


def test_messages_are_frozen_and_slotted() -> None:
    decoded = decode(begin())
    assert isinstance(decoded, Begin)
    assert not hasattr(decoded, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.xid = 1  # type: ignore[misc]


def test_unchanged_is_one_sentinel() -> None:
    assert isinstance(UNCHANGED, Unchanged)
    assert list(Unchanged) == [UNCHANGED]
    assert repr(UNCHANGED) == "UNCHANGED"
    assert Unchanged("UNCHANGED") is UNCHANGED


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"Z\x00", "unknown pgoutput message type 'Z'"),
        (b"S" + b"\x00" * 5, r"Stream Start.*protocol version 1"),
        (b"b" + b"\x00" * 20, r"Begin Prepare.*protocol version 1"),
        (begin() + b"\x00", r"Begin message: 1 trailing bytes"),
        (insert("1")[:-1], r"Insert message: truncated new tuple column 0"),
        (b"I" + struct.pack(">I", 1) + b"K" + tuple_data("1"), "expected new tuple 'N'"),
        (b"D" + struct.pack(">I", 1) + b"N" + tuple_data("1"), "expected old tuple 'K' or 'O'"),
        (update(b"K", ("1",), ())[:-3] + b"X" + tuple_data(), "expected new tuple 'N'"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"b", "binary"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"q", "kind 'q'"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", -1), "negative"),
        (b"I" + struct.pack(">I", 1) + b"N" + tuple_data("x")[:-1] + b"\xff", "not UTF-8"),
        (b"I" + struct.pack(">I", 1) + b"N\x00\x01t\xff\xff\xff\xff", "truncated"),
        (relation().replace(b"users\0d", b"users\0z"), "replica identity 'z'"),
        (b"R" + struct.pack(">I", 1) + b"public", r"Relation message: unterminated namespace"),
        (b"T" + struct.pack(">iB", -1, 0), "negative relation count"),
        (message(1, 1, "p", b"abc")[:-1], r"Message message: truncated content"),
    ],
)
def test_garbled_input_names_message_and_place(payload: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match) as raised:
        decode(payload)
    assert not raised.value.retriable
    assert isinstance(raised.value, CdcError)


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: chr(p[0]))
def test_every_truncation_is_a_decode_error(payload: bytes) -> None:
    decode(payload)  # the whole message is fine
    for size in range(len(payload)):
        with pytest.raises(DecodeError):
            decode(payload[:size])


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(payload: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(payload)


@given(st.sampled_from(list(b"BCORYIUDTM")), st.binary(max_size=64))
def test_known_types_with_random_bodies_raise_only_decode_error(kind: int, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(bytes([kind]) + body)


@given(st.sampled_from(SAMPLES), st.data())
def test_flipped_bytes_raise_only_decode_error(payload: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(1, len(payload) - 1))
    garbled = payload[:index] + bytes([data.draw(st.integers(0, 255))]) + payload[index + 1 :]
    with contextlib.suppress(DecodeError):
        decode(garbled)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16/B374D848", 0x16B374D848),
        ("0/0", 0),
        ("0/1505608", 0x1505608),
        ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
        ("a/b", 0xA0000000B),
    ],
)
def test_parse_lsn(text: str, value: int) -> None:
    assert parse_lsn(text) == value


def test_format_lsn_like_postgresql() -> None:
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(0) == "0/0"
    assert format_lsn(0x1505608) == "0/1505608"
    assert format_lsn(2**64 - 1) == "FFFFFFFF/FFFFFFFF"


@pytest.mark.parametrize("text", ["", "16", "16/", "/1", "1/2/3", "G/1", "123456789/0", "0x1/2"])
def test_parse_lsn_rejects_garbage(text: str) -> None:
    with pytest.raises(DecodeError, match="invalid LSN"):
        parse_lsn(text)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_format_lsn_rejects_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        format_lsn(value)


@given(st.integers(0, 2**64 - 1))
def test_lsn_round_trip(value: int) -> None:
    text = format_lsn(value)
    assert parse_lsn(text) == value
    assert parse_lsn(text.lower()) == value
    assert text == text.upper()


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_parsed_lsns_compare_like_the_positions(a: int, b: int) -> None:
    assert (parse_lsn(format_lsn(a)) < parse_lsn(format_lsn(b))) == (a < b)
