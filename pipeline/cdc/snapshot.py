"""Reading a table's existing rows in key order, a chunk at a time (blocking; run in a thread).

Values are read cast to text, the form pgoutput sends, so snapshot rows and streamed changes go
through the same conversion (:mod:`pipeline.cdc.values`). Each chunk is its own short query
(``key > last ORDER BY key LIMIT n``), never one long transaction: no snapshot holds back
vacuum, and a restart resumes after the last key published. How chunks interleave with the
stream without losing or regressing a row is the source's job (:mod:`pipeline.cdc.source`).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from pipeline.cdc.changes import split_table
from pipeline.cdc.errors import CdcError, SourceUnavailableError


@dataclass(frozen=True, slots=True)
class TableColumn:
    name: str
    type_oid: int
    type_name: str  # format_type(): what a key value is cast to


class SnapshotReader:
    """One connection, reused for every chunk of a source's snapshots."""

    def __init__(self, dsn: str, table: str, key: str) -> None:
        self._dsn = dsn
        self._schema, self._name = split_table(table)
        self._key = key
        self._conn: psycopg2.extensions.connection | None = None
        self.columns: list[TableColumn] = []

    def open(self) -> list[TableColumn]:
        try:
            self._conn = psycopg2.connect(self._dsn)
            self._conn.autocommit = True
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT a.attname, a.atttypid::int, format_type(a.atttypid, a.atttypmod)"
                    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0"
                    " AND NOT a.attisdropped AND a.attgenerated = ''"
                    " ORDER BY a.attnum",
                    (self._schema, self._name),
                )
                self.columns = [TableColumn(str(n), int(o), str(t)) for n, o, t in cur.fetchall()]
        except psycopg2.OperationalError as exc:
            raise SourceUnavailableError(f"snapshot of {self._schema}.{self._name}: {exc}") from exc
        if not self.columns:
            raise CdcError(f"table {self._schema}.{self._name} does not exist")
        if self._key not in [c.name for c in self.columns]:
            raise CdcError(f"{self._schema}.{self._name} has no key column {self._key!r}")
        return self.columns

    def chunk(self, after_key: str | None, limit: int) -> list[list[str | None]]:
        """Up to ``limit`` rows with key above ``after_key`` (text), in key order, as text."""
        if self._conn is None:
            self.open()
        assert self._conn is not None
        key_type = next(c.type_name for c in self.columns if c.name == self._key)
        select = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c.name)) for c in self.columns
        )
        table = sql.Identifier(self._schema, self._name)
        where: sql.Composable = sql.SQL("")
        args: list[object] = []
        if after_key is not None:
            qualified = sql.Identifier(self._schema, self._name, self._key)
            where = sql.SQL(" WHERE {} > CAST(%s AS {})").format(qualified, sql.SQL(key_type))
            args.append(after_key)
        # Qualified: a bare name in ORDER BY would mean the ``::text`` output column of that
        # name, and sort the keys as text (1, 10, 100, 2...) while WHERE compares them as keys.
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT %s").format(
            select, table, where, sql.Identifier(self._schema, self._name, self._key)
        )
        args.append(limit)
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, args)
                return [list(row) for row in cur.fetchall()]
        except psycopg2.OperationalError as exc:
            self.close()
            raise SourceUnavailableError(f"snapshot of {self._schema}.{self._name}: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
