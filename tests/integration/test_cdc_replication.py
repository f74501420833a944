"""Logical replication against a real PostgreSQL: what arrives, in which order, and what the slot
remembers after acks, pauses and lost connections."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, TypeVar

import psycopg2
import pytest
from psycopg2 import sql

from pipeline.cdc.errors import CdcError, SourceUnavailableError
from pipeline.cdc.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    decode,
    parse_lsn,
)
from pipeline.cdc.replication import (
    ReplicationStream,
    SlotInfo,
    current_wal_lsn,
    drop_slot,
    emit_watermark,
    ensure_publication,
    ensure_slot,
)
from tests.postgres_support import PgTable

M = TypeVar("M")
Got = list[tuple[int, Message]]
READ_TIMEOUT_S = 15.0
TEXT, INT4 = 25, 23


def run(dsn: str, *statements: sql.Composable | str, params: Sequence[Any] = ()) -> list[Any]:
    """Run ``statements`` in one committed transaction; the last one's rows."""
    rows: list[Any] = []
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement, tuple(params) or None)
            rows = cur.fetchall() if cur.description else []
    return rows


def on(table: PgTable, template: str) -> sql.Composable:
    return sql.SQL(template).format(sql.Identifier(table.schema, table.name))


def prepare(table: PgTable) -> SlotInfo:
    ensure_publication(table.dsn, table.publication, table.qualified)
    return ensure_slot(table.dsn, table.slot)


def slot_position(table: PgTable) -> int:
    rows = run(
        table.dsn,
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        params=(table.slot,),
    )
    return parse_lsn(rows[0][0])


def read_until(stream: ReplicationStream, done: Callable[[list[Message]], bool]) -> Got:
    got: Got = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while not done([message for _, message in got]):
        assert time.monotonic() < deadline, f"stream stalled after {got}"
        got += [(lsn, decode(payload)) for lsn, payload in stream.read(100, 0.5)]
    return got


def commits(count: int) -> Callable[[list[Message]], bool]:
    return lambda messages: sum(isinstance(m, Commit) for m in messages) >= count


def read_for(stream: ReplicationStream, seconds: float) -> Got:
    """Everything arriving within ``seconds``: proves that nothing more comes."""
    got: Got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        got += [(lsn, decode(payload)) for lsn, payload in stream.read(100, min(left, 0.5))]
    return got


def of_type(messages: Sequence[Message], kind: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, kind)]


def kinds(got: Got) -> list[type]:
    return [type(message) for _, message in got]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def streaming(table: PgTable, **kwargs: Any) -> Iterator[ReplicationStream]:
    dsn = kwargs.pop("dsn", table.dsn)
    with ReplicationStream(dsn, table.slot, table.publication, **kwargs) as stream:
        yield stream


def unrelated_wal(table: PgTable) -> None:
    """WAL the publication does not carry: moves the server's WAL end, never the stream."""
    run(table.dsn, f"CREATE TABLE IF NOT EXISTS other_{table.slot} (x int)")
    run(table.dsn, f"INSERT INTO other_{table.slot} SELECT generate_series(1, 100)")


def test_changes_arrive_in_commit_order_with_their_values(pg_table: PgTable) -> None:
    assert prepare(pg_table).created
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'ada', 'x'), (2, 'bob', NULL)"))
    run(
        pg_table.dsn,
        on(pg_table, "UPDATE {} SET name = 'ada2' WHERE id = 1"),
        on(pg_table, "UPDATE {} SET id = 3 WHERE id = 2"),
    )
    run(pg_table.dsn, on(pg_table, "DELETE FROM {} WHERE id = 1"))

    with streaming(pg_table) as stream:
        got = read_until(stream, commits(3))
        assert read_for(stream, 1.0) == []

    assert kinds(got) == [
        *(Begin, Relation, Insert, Insert, Commit),
        *(Begin, Update, Update, Commit),
        *(Begin, Delete, Commit),
    ]
    messages = [message for _, message in got]
    (relation,) = of_type(messages, Relation)
    assert (relation.namespace, relation.name, relation.replica_identity) == (
        "public",
        pg_table.name,
        "d",
    )
    assert relation.columns == (
        Column("id", INT4, -1, key=True),
        Column("name", TEXT, -1, key=False),
        Column("note", TEXT, -1, key=False),
    )
    oid = relation.oid
    assert of_type(messages, Insert) == [
        Insert(oid, ("1", "ada", "x")),
        Insert(oid, ("2", "bob", None)),
    ]
    assert of_type(messages, Update) == [
        Update(oid, None, False, ("1", "ada2", "x")),  # key unchanged: no old tuple
        Update(oid, ("2", None, None), True, ("3", "bob", None)),  # key changed: the old key
    ]
    assert of_type(messages, Delete) == [Delete(oid, ("1", None, None), True)]

    begins, ends = of_type(messages, Begin), of_type(messages, Commit)
    for begin, end in zip(begins, ends, strict=True):
        assert begin.final_lsn == end.commit_lsn
        assert begin.commit_time == end.commit_time
        assert end.commit_time.utcoffset() is not None
    assert [b.xid for b in begins] == sorted({b.xid for b in begins})
    assert [c.end_lsn for c in ends] == sorted({c.end_lsn for c in ends})
    # a Commit arrives at its end LSN: the position to acknowledge once it is published
    assert [lsn for lsn, m in got if isinstance(m, Commit)] == [c.end_lsn for c in ends]


def test_replica_identity_full_sends_whole_old_rows(pg_table: PgTable) -> None:
    run(pg_table.dsn, on(pg_table, "ALTER TABLE {} REPLICA IDENTITY FULL"))
    prepare(pg_table)
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'ada', 'x')"))
    run(pg_table.dsn, on(pg_table, "UPDATE {} SET name = 'bea' WHERE id = 1"))
    run(pg_table.dsn, on(pg_table, "DELETE FROM {} WHERE id = 1"))

    with streaming(pg_table) as stream:
        got = read_until(stream, commits(3))

    messages = [message for _, message in got]
    (relation,) = of_type(messages, Relation)
    assert relation.replica_identity == "f"
    assert all(column.key for column in relation.columns)  # FULL: every column identifies
    assert of_type(messages, Update) == [
        Update(relation.oid, ("1", "ada", "x"), False, ("1", "bea", "x"))
    ]
    assert of_type(messages, Delete) == [Delete(relation.oid, ("1", "bea", "x"), False)]


def test_unchanged_toast_types_and_truncate(pg_table: PgTable) -> None:
    mood = f"mood_{uuid.uuid4().hex[:8]}"
    run(
        pg_table.dsn,
        f"CREATE TYPE {mood} AS ENUM ('happy', 'sad')",
        on(pg_table, f"ALTER TABLE {{}} ADD COLUMN mood {mood}"),
    )
    prepare(pg_table)
    big = os.urandom(20_000).hex()  # far beyond the 2 kB TOAST threshold, hardly compressible
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'ada', %s, 'happy')"), params=(big,))
    run(pg_table.dsn, on(pg_table, "UPDATE {} SET name = 'bea' WHERE id = 1"))
    run(pg_table.dsn, on(pg_table, "TRUNCATE {}"))

    with streaming(pg_table) as stream:
        got = read_until(stream, commits(3))

    assert kinds(got) == [
        *(Begin, TypeInfo, Relation, Insert, Commit),
        *(Begin, Update, Commit),
        *(Begin, TypeInfo, Relation, Truncate, Commit),  # TRUNCATE makes a new relfilenode
    ]
    messages = [message for _, message in got]
    type_info, type_again = of_type(messages, TypeInfo)
    relation, relation_again = of_type(messages, Relation)
    assert (type_again, relation_again) == (type_info, relation)
    assert (type_info.namespace, type_info.name) == ("public", mood)
    assert relation.columns[3].type_oid == type_info.oid
    assert of_type(messages, Insert) == [Insert(relation.oid, ("1", "ada", big, "happy"))]
    (update,) = of_type(messages, Update)
    assert update.new == ("1", "bea", UNCHANGED, "happy")
    assert of_type(messages, Truncate) == [Truncate((relation.oid,), False, False)]
    run(pg_table.dsn, on(pg_table, "DROP TABLE {}"), f"DROP TYPE {mood}")


def test_watermark_arrives_between_the_transactions_around_it(pg_table: PgTable) -> None:
    prepare(pg_table)
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'before', NULL)"))
    watermark = emit_watermark(pg_table.dsn, "msm.watermark", "window-1")
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (2, 'after', NULL)"))

    with streaming(pg_table) as stream:
        got = read_until(stream, commits(3))

    assert kinds(got) == [
        *(Begin, Relation, Insert, Commit),
        *(Begin, LogicalMessage, Commit),
        *(Begin, Insert, Commit),
    ]
    messages = [message for _, message in got]
    assert of_type(messages, LogicalMessage) == [
        LogicalMessage(True, watermark, "msm.watermark", b"window-1")
    ]
    assert [insert.new[1] for insert in of_type(messages, Insert)] == ["before", "after"]


def test_ack_then_reopen_resumes_after_the_acked_commit(pg_table: PgTable) -> None:
    prepare(pg_table)
    for row in (1, 2, 3):
        run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (%s, 'n', NULL)"), params=(row,))

    with streaming(pg_table) as stream:
        got = read_until(stream, commits(3))
        second = of_type([m for _, m in got], Commit)[1]
        stream.ack(second.end_lsn)
        stream.ack(second.end_lsn - 1)  # an older position never moves the slot back
        assert stream.acked_lsn == second.end_lsn
    assert wait_for(lambda: slot_position(pg_table) == second.end_lsn)

    with streaming(pg_table) as stream:
        resumed = read_until(stream, commits(1))
        assert read_for(stream, 1.0) == []
    assert kinds(resumed) == [Begin, Relation, Insert, Commit]  # Relation again: new session
    assert of_type([m for _, m in resumed], Insert)[0].new == ("3", "n", None)


def test_without_ack_everything_is_sent_again(pg_table: PgTable) -> None:
    start = prepare(pg_table).confirmed_flush_lsn
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'a', NULL)"))
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (2, 'b', NULL)"))

    with streaming(pg_table, status_interval_s=0.2) as stream:
        first = read_until(stream, commits(2))
        unrelated_wal(pg_table)
        assert read_for(stream, 2.0) == []  # keepalives and status updates go both ways
        assert stream.wal_end > of_type([m for _, m in first], Commit)[-1].end_lsn
    assert slot_position(pg_table) == start

    with streaming(pg_table) as stream:
        again = read_until(stream, commits(2))
    assert again == first


@pytest.mark.parametrize(
    ("status_interval_s", "sender_timeout"),
    [(0.2, None), (30.0, "2s")],
    ids=["own-status-updates", "server-asks-for-replies"],
)
def test_slot_moves_only_to_what_was_acked(
    pg_table: PgTable, status_interval_s: float, sender_timeout: str | None
) -> None:
    """psycopg2 alone raises its flush position to the server's WAL end on keepalives read
    after the last data was acked, or before any data came; and sends it by itself."""
    prepare(pg_table)
    dsn = pg_table.dsn
    if sender_timeout is not None:  # the server asks for a reply after half of it in silence
        dsn += f" options='-c wal_sender_timeout={sender_timeout}'"

    with streaming(pg_table, dsn=dsn, status_interval_s=status_interval_s) as stream:
        unrelated_wal(pg_table)
        assert read_for(stream, 1.0) == []  # keepalives before any data
        run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'a', NULL)"))
        (commit,) = of_type([m for _, m in read_until(stream, commits(1))], Commit)
        stream.ack(commit.end_lsn)
        for _ in range(3):
            unrelated_wal(pg_table)
            assert read_for(stream, 1.5) == []
        assert stream.wal_end > commit.end_lsn
        time.sleep(0.3)  # the last status update reaches the walsender
        assert slot_position(pg_table) == commit.end_lsn


def test_keepalive_keeps_a_paused_stream_connected(pg_table: PgTable) -> None:
    prepare(pg_table)
    short = pg_table.dsn + " options='-c wal_sender_timeout=2s'"
    idle = PgTable(
        pg_table.dsn, "public", pg_table.name, pg_table.publication, f"{pg_table.slot}_x"
    )
    ensure_slot(idle.dsn, idle.slot)
    try:
        with (
            streaming(pg_table, dsn=short, status_interval_s=60) as paused,
            streaming(idle, dsn=short, status_interval_s=60) as neglected,
        ):
            assert paused.read(10, 0.2) == []
            assert neglected.read(10, 0.2) == []
            deadline = time.monotonic() + 5.0  # 2.5 x wal_sender_timeout without reading
            while time.monotonic() < deadline:
                paused.keepalive()
                time.sleep(0.4)
            run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'after pause', NULL)"))
            got = read_until(paused, commits(1))
            assert of_type([m for _, m in got], Insert)[0].new == ("1", "after pause", None)
            with pytest.raises(SourceUnavailableError) as dropped:
                read_for(neglected, 5.0)
            assert dropped.value.retriable
            assert isinstance(dropped.value.__cause__, psycopg2.Error)
    finally:
        drop_slot(idle.dsn, idle.slot)


def test_terminated_connection_is_retriable_and_loses_nothing(pg_table: PgTable) -> None:
    prepare(pg_table)
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'a', NULL)"))
    with streaming(pg_table) as stream:
        first = read_until(stream, commits(1))
        run(
            pg_table.dsn,
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE slot_name = %s",
            params=(pg_table.slot,),
        )
        with pytest.raises(SourceUnavailableError) as lost:
            read_for(stream, 5.0)
        assert lost.value.retriable
    with streaming(pg_table) as stream:
        assert read_until(stream, commits(1)) == first


def test_a_slot_in_use_elsewhere_is_retriable(pg_table: PgTable) -> None:
    prepare(pg_table)
    with streaming(pg_table):
        started = time.monotonic()
        with pytest.raises(SourceUnavailableError, match="active") as busy:
            ReplicationStream(pg_table.dsn, pg_table.slot, pg_table.publication).open()
        assert busy.value.retriable
        assert time.monotonic() - started >= 4.0  # waited for it to be released first


def test_stream_reads_a_publication_with_a_quoted_name(pg_table: PgTable) -> None:
    quoted = PgTable(pg_table.dsn, "public", pg_table.name, 'Pub "Mixed"', pg_table.slot)
    prepare(quoted)
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'a', NULL)"))
    try:
        with streaming(quoted) as stream:
            assert kinds(read_until(stream, commits(1))) == [Begin, Relation, Insert, Commit]
    finally:
        run(pg_table.dsn, sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(quoted.publication)))


def test_publication_is_created_extended_and_left_alone(pg_table: PgTable) -> None:
    def published() -> set[str]:
        rows = run(
            pg_table.dsn,
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
            params=(pg_table.publication,),
        )
        return {row[0] for row in rows}

    second = f"{pg_table.name}_b"
    run(pg_table.dsn, f'CREATE TABLE "{second}" (id int PRIMARY KEY)')
    try:
        ensure_publication(pg_table.dsn, pg_table.publication, pg_table.name)
        ensure_publication(pg_table.dsn, pg_table.publication, pg_table.qualified)
        assert published() == {pg_table.name}
        ensure_publication(pg_table.dsn, pg_table.publication, f"public.{second}")
        assert published() == {pg_table.name, second}
        with pytest.raises(CdcError, match="does not exist") as missing:
            ensure_publication(pg_table.dsn, pg_table.publication, "public.no_such_table")
        assert not missing.value.retriable
        with pytest.raises(CdcError, match=r"schema\.name"):
            ensure_publication(pg_table.dsn, pg_table.publication, "a.b.c")
    finally:
        run(pg_table.dsn, f'DROP TABLE "{second}"')


def test_slot_is_created_once_and_foreign_slots_are_refused(pg_table: PgTable) -> None:
    created = ensure_slot(pg_table.dsn, pg_table.slot)
    assert created.created
    assert created.confirmed_flush_lsn is not None
    assert created.confirmed_flush_lsn <= current_wal_lsn(pg_table.dsn)
    assert ensure_slot(pg_table.dsn, pg_table.slot) == SlotInfo(False, created.confirmed_flush_lsn)

    foreign, physical = f"{pg_table.slot}_td", f"{pg_table.slot}_ph"
    run(
        pg_table.dsn,
        "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
        params=(foreign,),
    )
    run(pg_table.dsn, "SELECT pg_create_physical_replication_slot(%s)", params=(physical,))
    try:
        with pytest.raises(CdcError, match="test_decoding"):
            ensure_slot(pg_table.dsn, foreign)
        with pytest.raises(CdcError, match="physical"):
            ensure_slot(pg_table.dsn, physical)
    finally:
        assert drop_slot(pg_table.dsn, foreign)
        assert drop_slot(pg_table.dsn, physical)
    assert drop_slot(pg_table.dsn, pg_table.slot)
    assert not drop_slot(pg_table.dsn, pg_table.slot)


def test_current_wal_lsn_moves_with_writes(pg_table: PgTable) -> None:
    before = current_wal_lsn(pg_table.dsn)
    run(pg_table.dsn, on(pg_table, "INSERT INTO {} VALUES (1, 'a', NULL)"))
    # the write position: with synchronous_commit off the WAL writer gets there a moment later
    assert wait_for(lambda: current_wal_lsn(pg_table.dsn) > before)


def test_unreachable_server_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2"
        calls: list[Callable[[], object]] = [
            lambda: current_wal_lsn(dsn),
            lambda: ensure_slot(dsn, "s"),
            lambda: emit_watermark(dsn, "p", "c"),
            ReplicationStream(dsn, "s", "p").open,
        ]
        for call in calls:
            with pytest.raises(SourceUnavailableError) as unavailable:
                call()
            assert unavailable.value.retriable
            assert isinstance(unavailable.value.__cause__, psycopg2.OperationalError)


def test_stream_refuses_use_before_open(pg_table: PgTable) -> None:
    stream = ReplicationStream(pg_table.dsn, pg_table.slot, pg_table.publication)
    with pytest.raises(CdcError, match="not open"):
        stream.read(1, 0.0)
    with pytest.raises(CdcError, match="not open"):
        stream.ack(1)
    stream.close()  # closing a closed stream is harmless
    with pytest.raises(ValueError, match="max_messages"):
        stream.read(0, 0.0)
