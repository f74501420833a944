"""Blocking helpers over psycopg2's logical replication, meant to run in a thread.

The slot's ``confirmed_flush_lsn`` records what CDC has published, so the stream reports exactly
what :meth:`ReplicationStream.ack` was given, nothing psycopg2 works out itself. psycopg2 (2.9)
would: when it reads a server keepalive and the caller has acked the last data message (or none
came yet), it raises its own flush position to the keepalive's WAL end, and it sends its
positions by itself every ``status_interval`` and whenever the server asks for a reply.

Hence two cursors on one connection. The reader reads; its automatic status update is due every
~60 years. The sender never reads, so nothing but :meth:`~ReplicationStream.ack` moves its
positions, and it sends every status update. One gap remains: a server asks for a reply after
half of ``wal_sender_timeout`` without a word from us (call :meth:`~ReplicationStream.read` or
:meth:`~ReplicationStream.keepalive` more often than that), psycopg2's reader answers with its
own position, and the stream sends the acked one right after. Servers ignore a flush position
below the slot's (PostgreSQL 15.18 does), but one above it moves the slot: possible only while
no data arrived on this connection, over WAL that held nothing for the publication.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from pipeline.cdc.errors import CdcError, SourceUnavailableError
from pipeline.cdc.pgoutput import parse_lsn

__all__ = [
    "ReplicationStream",
    "SlotInfo",
    "current_wal_lsn",
    "drop_slot",
    "emit_watermark",
    "ensure_publication",
    "ensure_slot",
]

# SQLSTATE classes where the same call may succeed later: connection exception, transaction
# rollback (serialization, deadlock), insufficient resources, operator intervention (shutdown).
_RETRIABLE_CLASSES: Final = frozenset({"08", "40", "53", "57"})
_OBJECT_IN_USE: Final = "55006"  # the slot is active in another session
_LSN_MAX: Final = 2**64 - 1
# psycopg2 keeps status_interval in a C int of seconds: this is as close to "never" as it takes.
_READER_STATUS_INTERVAL_S: Final = 2_000_000_000
# After close() the server's walsender takes a moment to release the slot.
_BUSY_SLOT_WAIT_S: Final = 5.0
_BUSY_SLOT_POLL_S: Final = 0.1

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """``created`` is True when this call made the slot; its position is where it starts."""

    created: bool
    confirmed_flush_lsn: int | None


def _translate(exc: psycopg2.Error, doing: str) -> CdcError:
    code = exc.pgcode
    detail = (exc.pgerror or str(exc) or type(exc).__name__).strip()
    # libpq-level failures carry no SQLSTATE; a dropped stream even shows as a bare DatabaseError
    lost = code is None and (
        type(exc) is psycopg2.DatabaseError
        or isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
    )
    if lost or (code is not None and (code[:2] in _RETRIABLE_CLASSES or code == _OBJECT_IN_USE)):
        return SourceUnavailableError(f"{doing}: {detail}")
    return CdcError(f"{doing}: {detail}")


@contextmanager
def _session(dsn: str, doing: str) -> Iterator[psycopg2.extensions.cursor]:
    """An autocommit session: each statement is its own transaction, none is left open."""
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        raise _translate(exc, doing) from exc
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    except psycopg2.Error as exc:
        raise _translate(exc, doing) from exc
    finally:
        conn.close()


def _table_identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if len(parts) > 2 or not all(parts):
        raise CdcError(f"table {table!r}: expected 'name' or 'schema.name'")
    return sql.Identifier(*parts)


def ensure_publication(dsn: str, publication: str, table: str) -> None:
    """Make ``publication`` publish ``table`` (``name`` or ``schema.name``, taken literally)."""
    table_id = _table_identifier(table)
    pub_id = sql.Identifier(publication)
    with _session(dsn, f"preparing publication {publication!r} for table {table!r}") as cur:
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.oid = to_regclass(%s)::oid",
            (table_id.as_string(cur),),
        )
        row = cur.fetchone()
        if row is None:
            raise CdcError(f"table {table!r} does not exist")
        schema, name = row
        cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        if cur.fetchone() is None:
            try:
                cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(pub_id, table_id))
                return
            except psycopg2.errors.DuplicateObject:
                pass  # created meanwhile by someone else: check that it has the table
        cur.execute(
            "SELECT 1 FROM pg_publication_tables"
            " WHERE pubname = %s AND schemaname = %s AND tablename = %s",
            (publication, schema, name),
        )
        if cur.fetchone() is None:
            with suppress(psycopg2.errors.DuplicateObject):  # added meanwhile
                cur.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(pub_id, table_id))


def _slot_row(cur: psycopg2.extensions.cursor, slot: str) -> tuple[Any, ...] | None:
    cur.execute(
        "SELECT slot_type, plugin, database, confirmed_flush_lsn::text, current_database()"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    return cur.fetchone()


def ensure_slot(dsn: str, slot: str) -> SlotInfo:
    """Create the logical slot ``slot`` with pgoutput unless it exists; refuse a foreign one."""
    with _session(dsn, f"preparing replication slot {slot!r}") as cur:
        row = _slot_row(cur, slot)
        if row is None:
            try:
                cur.execute(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                    (slot,),
                )
                created = cur.fetchone()
                assert created is not None
                return SlotInfo(created=True, confirmed_flush_lsn=parse_lsn(created[0]))
            except psycopg2.errors.DuplicateObject:
                row = _slot_row(cur, slot)  # created meanwhile: check it like any other
                if row is None:  # and dropped again
                    raise SourceUnavailableError(f"slot {slot!r} appeared and vanished") from None
        slot_type, plugin, database, confirmed, current = row
        if slot_type != "logical":
            raise CdcError(f"replication slot {slot!r} is {slot_type}, not logical")
        if plugin != "pgoutput":
            raise CdcError(f"replication slot {slot!r} uses plugin {plugin!r}, not pgoutput")
        if database != current:
            raise CdcError(
                f"replication slot {slot!r} belongs to database {database!r}, not {current!r}"
            )
        return SlotInfo(
            created=False, confirmed_flush_lsn=parse_lsn(confirmed) if confirmed else None
        )


def drop_slot(dsn: str, slot: str, wait_s: float = _BUSY_SLOT_WAIT_S) -> bool:
    """Drop ``slot``; False if there was none. Waits ``wait_s`` for its reader to let go."""
    deadline = time.monotonic() + wait_s
    with _session(dsn, f"dropping replication slot {slot!r}") as cur:
        while True:
            if _slot_row(cur, slot) is None:
                return False
            try:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return True
            except psycopg2.errors.UndefinedObject:
                return False
            except psycopg2.errors.ObjectInUse as exc:
                if time.monotonic() >= deadline:
                    raise _translate(exc, f"dropping replication slot {slot!r}") from exc
            time.sleep(_BUSY_SLOT_POLL_S)


def current_wal_lsn(dsn: str) -> int:
    """The server's current WAL write position (how far the slot could be read today)."""
    with _session(dsn, "reading the current WAL position") as cur:
        cur.execute("SELECT pg_current_wal_lsn()::text")
        row = cur.fetchone()
        assert row is not None
        return parse_lsn(row[0])


def emit_watermark(dsn: str, prefix: str, content: str) -> int:
    """Commit a transactional logical message; returns its LSN (the stream's message ``lsn``).

    It arrives in commit order between the transactions committed before and after it, which
    is what makes it a marker in the change stream.
    """
    with _session(dsn, f"emitting watermark {prefix!r}") as cur:
        cur.execute("SELECT pg_logical_emit_message(true, %s, %s)::text", (prefix, content))
        row = cur.fetchone()
        assert row is not None
        return parse_lsn(row[0])


def _quote_ident(name: str) -> str:
    """pgoutput splits ``publication_names`` like SQL identifiers: quote to keep case."""
    return '"' + name.replace('"', '""') + '"'


class ReplicationStream:
    """A pgoutput stream (protocol 1, text values, logical messages) from one slot.

    Not for concurrent use from several threads at once; one call at a time, from any thread.
    Call :meth:`read` or :meth:`keepalive` well within half of the server's
    ``wal_sender_timeout`` (default 60 s), and keep ``status_interval_s`` below that too.
    """

    def __init__(
        self,
        dsn: str,
        slot: str,
        publication: str,
        start_lsn: int = 0,
        status_interval_s: float = 10.0,
    ) -> None:
        if status_interval_s <= 0:
            raise ValueError(f"status_interval_s must be positive, not {status_interval_s}")
        if not 0 <= start_lsn <= _LSN_MAX:
            raise ValueError(f"start_lsn must be an unsigned 64-bit LSN, not {start_lsn}")
        self._dsn = dsn
        self._slot = slot
        self._publication = publication
        self._start_lsn = start_lsn
        self._status_interval_s = status_interval_s
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None
        self._reader: psycopg2.extras.ReplicationCursor | None = None
        self._sender: psycopg2.extras.ReplicationCursor | None = None
        self._acked = 0
        self._last_status = 0.0
        self._reader_feedback_at: object = None
        self._wal_end = 0

    @property
    def acked_lsn(self) -> int:
        """The highest LSN given to :meth:`ack` (0 before any)."""
        return self._acked

    @property
    def wal_end(self) -> int:
        """The server's WAL end as of the last message or keepalive read (0 before any)."""
        self._refresh_wal_end()
        return self._wal_end

    def open(self) -> None:
        """START_REPLICATION; waits a few seconds for a previous reader to release the slot."""
        with self._lock:
            if self._conn is not None:
                raise CdcError(f"replication stream of slot {self._slot!r} is already open")
            deadline = time.monotonic() + _BUSY_SLOT_WAIT_S
            while True:
                try:
                    self._start()
                    return
                except psycopg2.errors.ObjectInUse as exc:
                    self._disconnect()
                    if time.monotonic() >= deadline:
                        raise _translate(exc, self._doing("starting")) from exc
                except psycopg2.Error as exc:
                    self._disconnect()
                    raise _translate(exc, self._doing("starting")) from exc
                except BaseException:
                    self._disconnect()
                    raise
                time.sleep(_BUSY_SLOT_POLL_S)

    def _start(self) -> None:
        conn = psycopg2.connect(
            self._dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        self._conn = conn
        reader = conn.cursor()
        sender = conn.cursor()
        self._reader, self._sender = reader, sender
        reader.start_replication(
            slot_name=self._slot,
            decode=False,
            start_lsn=max(self._start_lsn, self._acked),
            options={
                "proto_version": "1",
                "publication_names": _quote_ident(self._publication),
                "messages": "true",
            },
            status_interval=_READER_STATUS_INTERVAL_S,
        )
        self._reader_feedback_at = reader.feedback_timestamp
        self._last_status = time.monotonic()

    def read(self, max_messages: int, timeout_s: float) -> list[tuple[int, bytes]]:
        """Up to ``max_messages`` ``(data_start, payload)``; waits ``timeout_s`` for the first.

        Returns as soon as at least one message is in hand and no other is ready, so a batch
        never waits for stragglers. Status updates fall due while waiting are sent on time.
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        with self._lock:
            reader = self._open_reader()
            deadline = time.monotonic() + max(timeout_s, 0.0)
            messages: list[tuple[int, bytes]] = []
            while len(messages) < max_messages:
                self._send_status_if_due()
                message = self._call("reading", reader.read_message)
                self._answer_reader_status()
                if message is not None:
                    messages.append((int(message.data_start), bytes(message.payload)))
                    continue
                if messages:  # take what already arrived, wait for nothing more
                    if not self._wait_readable(reader, 0.0):
                        break
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                due = self._last_status + self._status_interval_s - time.monotonic()
                self._wait_readable(reader, max(min(remaining, due), 0.0))
            return messages

    def ack(self, flush_lsn: int) -> None:
        """Confirm everything up to ``flush_lsn`` (a Commit's ``end_lsn``); sent at once.

        The slot then never resends what committed at or before it. A lower LSN than an
        earlier ack changes nothing: the position never goes back.
        """
        if not 0 <= flush_lsn <= _LSN_MAX:
            raise ValueError(f"flush_lsn must be an unsigned 64-bit LSN, not {flush_lsn}")
        with self._lock:
            self._open_reader()
            self._acked = max(self._acked, flush_lsn)
            self._send_status()

    def keepalive(self) -> None:
        """Send a status update (the acked LSN) without reading, to stay connected in a pause."""
        with self._lock:
            self._open_reader()
            self._send_status()

    def close(self) -> None:
        with self._lock:
            self._refresh_wal_end()
            self._disconnect()

    def __enter__(self) -> ReplicationStream:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _doing(self, verb: str) -> str:
        return f"{verb} replication from slot {self._slot!r}"

    def _open_reader(self) -> psycopg2.extras.ReplicationCursor:
        if self._reader is None:
            raise CdcError(f"replication stream of slot {self._slot!r} is not open")
        return self._reader

    def _call(self, verb: str, func: Callable[[], _T]) -> _T:
        try:
            return func()
        except psycopg2.Error as exc:
            raise _translate(exc, self._doing(verb)) from exc

    def _send_status(self) -> None:
        """Every status update carries the acked LSN, explicitly (0 means "none" to the server)."""
        sender = self._sender
        assert sender is not None
        acked = self._acked
        try:
            # types-psycopg2 leaves send_feedback unannotated
            sender.send_feedback(write_lsn=acked, flush_lsn=acked, force=True)  # type: ignore[no-untyped-call]
        except psycopg2.Error as exc:
            raise _translate(exc, self._doing("sending status for")) from exc
        self._last_status = time.monotonic()

    def _send_status_if_due(self) -> None:
        if time.monotonic() - self._last_status >= self._status_interval_s:
            self._send_status()

    def _answer_reader_status(self) -> None:
        """The reader sent its own positions (the server asked for a reply): correct them."""
        reader = self._reader
        assert reader is not None
        stamp = reader.feedback_timestamp
        if stamp != self._reader_feedback_at:
            self._reader_feedback_at = stamp
            self._send_status()

    def _wait_readable(self, reader: psycopg2.extras.ReplicationCursor, timeout_s: float) -> bool:
        try:
            readable, _, _ = select.select([reader.connection.fileno()], [], [], timeout_s)
            return bool(readable)
        except (OSError, ValueError, psycopg2.Error) as exc:
            raise SourceUnavailableError(f"{self._doing('waiting for')}: {exc}") from exc

    def _refresh_wal_end(self) -> None:
        reader = self._reader
        if reader is not None and not reader.closed:
            self._wal_end = int(reader.wal_end)

    def _disconnect(self) -> None:
        conn, self._conn, self._reader, self._sender = self._conn, None, None, None
        if conn is not None:
            with suppress(psycopg2.Error):
                conn.close()
