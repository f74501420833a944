"""A private PostgreSQL cluster for CDC integration tests (see tests/postgres_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import sql

from pipeline.cdc.replication import drop_slot
from tests.postgres_support import PgTable, PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Started once per session; missing binaries fail the tests with what to install."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_table(postgres: PostgresServer) -> Iterator[PgTable]:
    """A fresh ``(id integer primary key, name text, note text)`` table with unique publication
    and slot names; the slot (which would pin WAL), publication and table go at the end."""
    table = PgTable.unique_names(postgres.dsn)
    table_id = sql.Identifier(table.schema, table.name)
    conn = psycopg2.connect(postgres.dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, name text, note text)").format(
                    table_id
                )
            )
        yield table
        drop_slot(postgres.dsn, table.slot)
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(table.publication))
            )
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(table_id))
    finally:
        conn.close()
