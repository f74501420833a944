"""CDC end to end: a real PostgreSQL table (logical replication, pgoutput) through all five
layers of real ``msm worker`` processes on the real broker, into a handler's ledger.

Covers the issue's four promises: changes arrive per key in commit order; a restart resumes
exactly (a clean stop re-sends nothing, a SIGKILL loses nothing); a slow subscriber slows the
source and it resumes; a snapshot then the stream leave every subscriber with the table's state.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg2 import sql

from pipeline import headers as h
from pipeline.ops.cdc import read_sources
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.fixtures.topologies import minimal
from tests.postgres_support import PostgresServer
from tests.worker_support import MSM, REPO, TopicReader, Worker, applied_topology

LAYERS = ["frontend", "scheduler", "flow", "delivery", "execution"]
EVENT = "item.changed"
DSN_ENV = "MSM_TEST_PG_DSN"
STREAMING = "cdc items: streaming"


@dataclass
class Table:
    name: str
    dsn: str

    def run(self, *statements: str | tuple[str, tuple[object, ...]]) -> None:
        """One transaction."""
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            for statement in statements:
                if isinstance(statement, tuple):
                    cur.execute(statement[0].format(t=self.name), statement[1])
                else:
                    cur.execute(statement.format(t=self.name))
        conn.close()

    def rows(self) -> dict[str, dict[str, Any]]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT id, name, qty FROM {} ORDER BY id").format(
                    sql.Identifier(self.name)
                )
            )
            found = {str(i): {"id": i, "name": n, "qty": q} for i, n, q in cur.fetchall()}
        conn.close()
        return found


@pytest.fixture
def table(postgres: PostgresServer) -> Iterator[Table]:
    name = f"items_{uuid.uuid4().hex[:8]}"
    t = Table(name, postgres.dsn)
    t.run(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, name text, qty int, price numeric(10, 2),"
        " updated_at timestamptz DEFAULT now())",
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
    )
    yield t
    with psycopg2.connect(postgres.dsn) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE NOT active AND slot_name LIKE 'msm_t%%'"
        )
    conn.close()


def document(table: Table, handler: str = "record", **source: object) -> dict[str, Any]:
    doc = minimal()
    doc["delay_tiers"] = ["1s"]
    doc["schedules"] = {}
    doc["events"][EVENT] = {"schema": "schemas/item_changed.avsc", "partitions": 3}
    doc["subscribers"] = {
        "mirror": {
            "events": [EVENT],
            "handler": f"tests.integration.cdc_handlers:{handler}",
            "ordered": True,
            "concurrency": {"min": 1, "max": 1 if handler == "slow_record" else 4},
        }
    }
    spec = {"dsn_env": DSN_ENV, "table": table.name, "event": EVENT, "key": "id", **source}
    doc["cdc"] = {"items": spec}
    return doc


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for(self, count: int, worker: Worker, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(found := self.lines()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} changes handled:\n{worker.tail()}")
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{worker.tail()}")
            time.sleep(0.2)
        return found


@dataclass
class Setup:
    topology: Topology
    ledger: Ledger
    env: dict[str, str]
    directory: Path

    def worker(self, label: str) -> Worker:
        worker = Worker(self.topology, LAYERS, self.directory / f"{label}.log", env=self.env)
        try:
            worker.wait_ready(90)
            worker.wait_for_log(STREAMING, 60)
        except BaseException:
            worker.kill()  # a worker that never got going must not outlive its test
            raise
        return worker

    def ingress_ids(self) -> list[str]:
        topic = TopicNames(self.topology.namespace).ingress(EVENT)
        bootstrap = self.topology.kafka.bootstrap_servers
        with TopicReader(bootstrap, topic, 3) as reader:
            return [r.header[h.EVENT_ID].decode() for r in reader.poll(2.0)]


@pytest.fixture
def setup_for(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient, postgres: PostgresServer
) -> Iterator[Any]:
    stack: list[Any] = []

    def make(doc: dict[str, Any]) -> Setup:
        context = applied_topology(tmp_path, doc, kafka_bootstrap, admin)
        topology = context.__enter__()
        stack.append(context)
        ledger = Ledger(tmp_path / "ledger.jsonl")
        env = {DSN_ENV: postgres.dsn, "MSM_TEST_LEDGER": str(ledger.path)}
        return Setup(topology, ledger, env, tmp_path)

    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)


def by_key(lines: list[dict[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for line in lines:
        image = line["after"] if line["op"] != "d" else line["before"]
        out[line["key"]].append((line["op"], image and (image["name"], image["qty"])))
    return out


def test_inserts_updates_and_deletes_arrive_per_key_in_commit_order(
    setup_for: Any, table: Table
) -> None:
    setup = setup_for(document(table))
    with setup.worker("w") as worker:
        insert = "INSERT INTO {t} (id, name, qty) VALUES (%s, %s, %s)"
        table.run(*((insert, (i, f"n{i}", i)) for i in range(1, 6)))
        table.run(
            "UPDATE {t} SET name = 'renamed' WHERE id = 1", "UPDATE {t} SET qty = 20 WHERE id = 2"
        )
        table.run(
            "DELETE FROM {t} WHERE id = 3", "INSERT INTO {t} (id, name, qty) VALUES (6, 'n6', 6)"
        )
        table.run("UPDATE {t} SET qty = qty + 100 WHERE id IN (1, 2)")
        table.run("DELETE FROM {t} WHERE id = 1")
        lines = setup.ledger.wait_for(12, worker)
        assert worker.stop() == 0, worker.tail()

    assert by_key(lines) == {
        "1": [
            ("c", ("n1", 1)),
            ("u", ("renamed", 1)),
            ("u", ("renamed", 101)),
            ("d", ("renamed", 101)),
        ],
        "2": [("c", ("n2", 2)), ("u", ("n2", 20)), ("u", ("n2", 120))],
        "3": [("c", ("n3", 3)), ("d", ("n3", 3))],
        "4": [("c", ("n4", 4))],
        "5": [("c", ("n5", 5))],
        "6": [("c", ("n6", 6))],
    }
    for line in lines:  # before images (REPLICA IDENTITY FULL) and positions ride along
        assert (line["before"] is None) == (line["op"] == "c")
        assert (line["after"] is None) == (line["op"] == "d")
        assert line["event"].startswith("cdc:items:")
    positions = [_lsn(line["lsn"]) for line in sorted(lines, key=lambda x: x["event"])]
    assert all(p > 0 for p in positions)
    for changes in _group(lines).values():  # per key, commit positions never go back
        lsns = [_lsn(c["lsn"]) for c in changes]
        assert lsns == sorted(lsns)
    assert sorted(setup.ingress_ids()) == sorted(line["event"] for line in lines)


def test_a_restart_resumes_exactly_and_a_kill_loses_nothing(setup_for: Any, table: Table) -> None:
    setup = setup_for(document(table))
    insert = "INSERT INTO {t} (id, name, qty) VALUES (%s, %s, 0)"
    with setup.worker("a") as a:
        for i in range(20):
            table.run((insert, (i, f"a{i}")))
        setup.ledger.wait_for(20, a)
        assert a.stop() == 0, a.tail()
    for i in range(20, 40):  # committed while no worker runs: the slot keeps them
        table.run((insert, (i, f"b{i}")))
    with setup.worker("b") as b:
        setup.ledger.wait_for(40, b)
        time.sleep(2.0)
        ids = setup.ingress_ids()
        assert len(ids) == 40, "a clean restart re-sent or skipped"
        assert len(set(ids)) == 40
        for i in range(40, 100):
            table.run((insert, (i, f"c{i}")))
        time.sleep(0.3)
        b.kill()  # mid-stream: some changes may be in Kafka, unrecorded
    with setup.worker("c") as c:
        lines = setup.ledger.wait_for(100, c)
        time.sleep(2.0)
        lines = setup.ledger.lines()
        assert c.stop() == 0, c.tail()

    handled = Counter(line["key"] for line in lines)
    assert set(handled) == {str(i) for i in range(100)}, "a change was lost"
    ids = Counter(setup.ingress_ids())
    assert set(ids) == {line["event"] for line in lines}
    # Each row was inserted once: anything seen twice (a re-sent round, or a handler run again
    # because the SIGKILL also hit execution before its done record) carries the same id.
    ids_per_key: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        ids_per_key[line["key"]].add(line["event"])
    assert all(len(found) == 1 for found in ids_per_key.values()), "a change got a second id"
    assert sum(handled.values()) <= 100 + 500, "more than a round re-sent"


def test_a_lost_database_connection_is_retried_without_loss_or_repeats(
    setup_for: Any, table: Table
) -> None:
    setup = setup_for(document(table))
    insert = "INSERT INTO {t} (id, name, qty) VALUES (%s, %s, 0)"
    with setup.worker("w") as worker:
        table.run(*((insert, (i, f"a{i}")) for i in range(10)))
        setup.ledger.wait_for(10, worker)
        slot = setup.topology.cdc["items"].slot_for(setup.topology.namespace)
        table.run(  # what a database failover or a network cut does to the stream
            (
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE slot_name = %s AND active_pid IS NOT NULL",
                (slot,),
            )
        )
        worker.wait_for_log("retrying", 30)
        table.run(*((insert, (i, f"b{i}")) for i in range(10, 20)))
        lines = setup.ledger.wait_for(20, worker)
        time.sleep(1.0)
        assert worker.stop() == 0, worker.tail()
    assert sorted(int(line["key"]) for line in lines) == list(range(20))
    assert Counter(setup.ingress_ids()).most_common(1)[0][1] == 1, "a change was re-sent"


def test_a_slow_subscriber_slows_the_source_until_it_catches_up(
    setup_for: Any, table: Table
) -> None:
    lag = {"slow": 20, "pause": 60}
    setup = setup_for(document(table, "slow_record", rate_limit="200/s", lag=lag))
    ingress = TopicNames(setup.topology.namespace).ingress(EVENT)
    rows = 400
    with setup.worker("w") as worker:
        table.run(
            (
                "INSERT INTO {t} (id, name, qty)"
                " SELECT g, 'n' || g, 0 FROM generate_series(1, %s) g",
                (rows,),
            )
        )
        gaps, paces = [], set()
        deadline = time.monotonic() + 90
        while len(setup.ledger.lines()) < rows and time.monotonic() < deadline:
            published = _end_offsets(setup, ingress)
            gaps.append(published - len(setup.ledger.lines()))
            status = read_sources(setup.topology)["items"].status
            if status is not None:
                paces.add(status.pace)
            time.sleep(0.5)
        lines = setup.ledger.wait_for(rows, worker, 10)
        shown = _msm(setup, "status", "--json", "--sample-s", "0")
        assert worker.stop() == 0, worker.tail()
    (source,) = json.loads(shown)["cdc"]  # the pace as an operator sees it in `msm status`
    assert source["source"] == "items"
    assert source["status"]["pace"] in ("full", "slowed", "paused")
    assert 0 < source["status"]["events_total"] <= rows  # written every 5 s: may trail a little
    # Unpaced, all 400 would be published within 2 s (200/s) while ~40/s are handled.
    assert max(gaps) <= lag["pause"] + 200 + 40, f"the source ran ahead: gaps {gaps}"
    assert "paused" in paces, f"never paused: {paces}"
    assert len({line["key"] for line in lines}) == rows


def test_a_snapshot_then_the_stream_leave_the_tables_state_without_gaps(
    setup_for: Any, table: Table
) -> None:
    rows = 1_000
    table.run(
        (
            "INSERT INTO {t} (id, name, qty) SELECT g, 'old' || g, g FROM generate_series(1, %s) g",
            (rows,),
        )
    )
    # 300 changes/s: the snapshot takes about 4 s, while the table changes under it.
    doc = document(table, rate_limit="300/s", snapshot={"initial": True, "chunk_rows": 50})
    doc["subscribers"]["late"] = {**doc["subscribers"]["mirror"]}
    setup = setup_for(doc)
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:  # updates, deletes and new rows, before and during the snapshot
        try:
            conn = psycopg2.connect(table.dsn)
            conn.autocommit = True
            upsert = sql.SQL(
                "INSERT INTO {} (id, name, qty) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, qty = EXCLUDED.qty"
            ).format(sql.Identifier(table.name))
            delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table.name))
            with conn, conn.cursor() as cur:
                i = 0
                while not stop.is_set():
                    i += 1
                    key = 1 + (i * 37) % (rows + 200)
                    if i % 5 == 0:
                        cur.execute(delete, (key,))
                    else:
                        cur.execute(upsert, (key, f"new{i}", i))
                    time.sleep(0.02)
            conn.close()
        except BaseException as exc:  # the test fails on it below, not silently
            failures.append(exc)

    writer = threading.Thread(target=churn)
    log = setup.directory / "w.log"
    with Worker(setup.topology, LAYERS, log, env=setup.env) as worker:
        # Churn from the moment the slot exists (creating a slot waits for a quiet moment).
        worker.wait_for_log("initial snapshot", 90)
        writer.start()
        try:
            _wait_job(setup, "initial", "done", worker)
        finally:
            stop.set()
            writer.join()
        assert not failures, failures
        expected = table.rows()
        changed = sum(1 for k, row in expected.items() if not row["name"].startswith("old"))
        assert changed > 20, f"too little churn during the snapshot ({changed} rows)"
        _wait_state(setup, "mirror", expected, worker)
        snapshot_rows = [line for line in setup.ledger.lines() if line["op"] == "r"]
        assert snapshot_rows, "the snapshot published nothing"

        # A late subscriber asks for its own snapshot: only it gets the rows.
        before = len(setup.ledger.lines())
        shown = _msm(setup, "cdc", "snapshot", "items", "--subscriber", "late")
        job_id = shown.split("snapshot ", 1)[1].split()[0]
        _wait_job(setup, job_id, "done", worker)
        time.sleep(2.0)
        after = setup.ledger.lines()[before:]
        assert worker.stop() == 0, worker.tail()
    assert {line["sub"] for line in after} == {"late"}
    assert {line["key"] for line in after if line["op"] == "r"} == set(expected)


def _msm(setup: Setup, *args: str) -> str:
    """The installed CLI, as an operator runs it; its output."""
    command = [str(MSM), "--topology", str(setup.topology.source_path), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _state(lines: list[dict[str, Any]], subscriber: str) -> dict[str, dict[str, Any]]:
    """Each key's latest row, applying the subscriber's changes in the order it ran them."""
    rows: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line["sub"] != subscriber:
            continue
        if line["op"] == "d":
            rows.pop(line["key"], None)
        else:
            a = line["after"]
            rows[line["key"]] = {"id": int(a["id"]), "name": a["name"], "qty": a["qty"]}
    return rows


def _wait_state(setup: Setup, subscriber: str, expected: dict[str, Any], worker: Worker) -> None:
    deadline = time.monotonic() + 60
    while (state := _state(setup.ledger.lines(), subscriber)) != expected:
        if time.monotonic() > deadline:
            missing = set(expected) - set(state)
            extra = set(state) - set(expected)
            wrong = {k for k in set(state) & set(expected) if state[k] != expected[k]}
            raise AssertionError(
                f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]},"
                f" wrong {sorted(wrong)[:10]}:\n{worker.tail()}"
            )
        time.sleep(0.3)


def _wait_job(setup: Setup, job: str, state: str, worker: Worker) -> None:
    deadline = time.monotonic() + 90
    while True:
        jobs = read_sources(setup.topology)["items"].jobs
        if job in jobs and jobs[job].state == state:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"snapshot {job}: {jobs.get(job)}:\n{worker.tail()}")
        time.sleep(0.5)


def _end_offsets(setup: Setup, topic: str) -> int:
    """Records published to ``topic`` so far (the sum of its end offsets)."""
    consumer = Consumer(
        {"bootstrap.servers": setup.topology.kafka.bootstrap_servers, "group.id": "x"}
    )
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in range(3)
        )
    finally:
        consumer.close()


def _group(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        out[line["key"]].append(line)
    return out


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)
