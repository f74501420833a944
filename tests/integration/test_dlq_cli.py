"""`msm dlq list|show|redrive` against the real broker.

Dead letters are produced straight into ``<ns>.dlq.thumbnailer`` with the headers delivery
writes (the contract's), two of them stamped two hours ago so ``--since`` has something to
leave out. Redriven copies are read back from ``<ns>.sub.thumbnailer`` and ``<ns>.tasks``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.cli import cli
from pipeline.client.encoder import producer_config
from pipeline.tasks import TaskState, parse_record
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import minimal
from tests.worker_support import TopicReader, applied_topology

SUBSCRIBER = "thumbnailer"
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Dead:
    topology: Topology
    bootstrap: str
    event_ids: list[str]  # oldest first; the first two are two hours old

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)

    def partitions(self, topic: str) -> int:
        return next(p.partitions for p in plan_topics(self.topology) if p.name == topic)

    def msm(self, *args: str, code: int = 0) -> str:
        args = ("--topology", str(self.topology.source_path), *args)
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result.output

    def json(self, *args: str) -> Any:
        return json.loads(self.msm(*args, "--json"))


def _dead_letters(topology: Topology, count: int) -> list[str]:
    names = TopicNames(topology.namespace)
    schema = load_schema(topology.events["thing.created"].schema_path)
    producer = Producer(producer_config(topology))
    now_ms = int(time.time() * 1000)
    ids = []
    for i in range(count):
        event_id = f"e-{i}-{now_ms}"
        at = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        chain = ErrorChain()
        for attempt in (1, 2, 3):
            entry = ErrorEntry(attempt=attempt, at=at, error_type="http", status=500 + attempt)
            chain = chain.add(entry)
        dead_ms = now_ms - (2 * HOUR_MS if i < 2 else 0) - (count - i) * 1000
        headers: list[tuple[str, str | bytes | None]] = [
            (h.EVENT_ID, event_id.encode()),
            (h.EVENT_TYPE, b"thing.created"),
            (h.SCHEMA_FINGERPRINT, schema.fingerprint.hex().encode()),
            (h.KEY, f"k-{i}".encode()),
            (h.PUBLISHED_AT, str(dead_ms - 5000).encode()),
            (h.DELIVER_AT, str(dead_ms - 5000).encode()),
            (h.ATTEMPT, b"3"),
            (h.SUBSCRIBER, SUBSCRIBER.encode()),
            (h.FIRST_ATTEMPT_AT, str(dead_ms - 4000).encode()),
            (h.ERRORS, chain.to_json()),
            (h.DLQ_REASON, b"exhausted"),
            (h.DLQ_AT, str(dead_ms).encode()),
        ]
        payload = wire.encode(schema, {"id": f"k-{i}", "size": i, "colour": "red"})
        producer.produce(
            names.dlq(SUBSCRIBER),
            payload,
            f"k-{i}".encode(),
            headers=headers,
            timestamp=dead_ms,
        )
        ids.append(event_id)
    assert producer.flush(30) == 0
    return ids


@pytest.fixture(scope="module")
def dead(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Dead]:
    directory: Path = tmp_path_factory.mktemp("dlq")
    with applied_topology(directory, minimal(), kafka_bootstrap, admin) as topology:
        yield Dead(topology, kafka_bootstrap, _dead_letters(topology, 5))


def test_list_shows_every_dead_letter_oldest_first(dead: Dead) -> None:
    listing = dead.json("dlq", "list", SUBSCRIBER)
    assert listing["count"] == 5
    rows = listing["dead_letters"]
    assert [r["event_id"] for r in rows] == dead.event_ids
    assert {r["reason"] for r in rows} == {"exhausted"}
    assert {r["attempts"] for r in rows} == {3}
    assert rows[0]["first_error"]["status"] == 501
    assert rows[0]["last_error"]["status"] == 503
    assert [r["key"] for r in rows] == [f"k-{i}" for i in range(5)]
    table = dead.msm("dlq", "list", SUBSCRIBER)
    assert "HTTP 503" in table
    assert "5 dead letters" in table


def test_list_since_and_limit(dead: Dead) -> None:
    recent = dead.json("dlq", "list", SUBSCRIBER, "--since", "1h")
    assert [r["event_id"] for r in recent["dead_letters"]] == dead.event_ids[2:]
    oldest = dead.json("dlq", "list", SUBSCRIBER, "--limit", "3")
    assert [r["event_id"] for r in oldest["dead_letters"]] == dead.event_ids[:3]


def test_show_by_event_id_and_by_partition_offset(dead: Dead) -> None:
    shown = dead.json("dlq", "show", SUBSCRIBER, dead.event_ids[3])
    assert shown["payload"]["format"] == "avro"
    assert shown["payload"]["value"] == {"id": "k-3", "size": 3, "colour": "red"}
    assert shown["errors"]["total"] == 3
    assert {"name": h.DLQ_REASON, "value": "exhausted", "base64": None} in shown["headers"]
    again = dead.json("dlq", "show", SUBSCRIBER, shown["ref"])
    assert again["event_id"] == dead.event_ids[3]
    text = dead.msm("dlq", "show", SUBSCRIBER, f"{dead.event_ids[3]}/{SUBSCRIBER}")
    assert '"colour": "red"' in text
    missing = dead.msm("dlq", "show", SUBSCRIBER, "no-such-event", code=1)
    assert "no dead letter 'no-such-event'" in missing


def test_redrive_marks_what_it_redrove(dead: Dead) -> None:
    first = dead.msm("dlq", "redrive", SUBSCRIBER, "--limit", "2", "--yes")
    assert "redrove 2 dead letters" in first
    rest = dead.msm("dlq", "redrive", SUBSCRIBER, "--yes")
    assert "redrove 3 dead letters" in rest
    assert "nothing to redrive" in dead.msm("dlq", "redrive", SUBSCRIBER, "--yes")
    sub = dead.names.sub(SUBSCRIBER)
    with TopicReader(dead.bootstrap, sub, dead.partitions(sub)) as reader:
        records = reader.wait_for(lambda r: len(r) >= 5, "5 redriven tasks")
        reader.poll(1.0)
    assert len(records) == 5
    assert sorted(h.get_str(r.header, h.EVENT_ID) or "" for r in records) == sorted(dead.event_ids)
    for r in records:
        named = r.header
        assert named[h.ATTEMPT] == b"1"
        assert named[h.REDRIVEN_FROM].startswith(f"{dead.names.dlq(SUBSCRIBER)}:".encode())
        for gone in (h.ERRORS, h.DLQ_REASON, h.DLQ_AT, h.DELIVER_AT):
            assert gone not in named
        assert r.key == named[h.KEY]
    listing = dead.json("dlq", "list", SUBSCRIBER)
    assert listing["count"] == 5  # dead letters stay
    assert all(r["redriven"] for r in listing["dead_letters"])
    tasks = dead.names.tasks
    with TopicReader(dead.bootstrap, tasks, dead.partitions(tasks)) as reader:
        found = reader.wait_for(lambda r: len(r) >= 5, "5 task records")
    states = [parse_record(r.value) for r in found]
    assert {s.state for s in states} == {TaskState.PENDING}
    assert {s.event_id for s in states} == set(dead.event_ids)
    assert all(s.detail.startswith("redriven from ") and s.attempt == 1 for s in states)


def test_redrive_all_goes_again_and_confirmation_can_decline(dead: Dead) -> None:
    args = ("--topology", str(dead.topology.source_path), "dlq", "redrive", SUBSCRIBER, "--all")
    declined = CliRunner().invoke(cli, list(args), input="n\n")
    assert declined.exit_code == 1
    assert "Redrive 5 dead letters" in declined.output
    again = dead.msm("dlq", "redrive", SUBSCRIBER, "--all", "--since", "1h", "--yes")
    assert "redrove 3 dead letters" in again
