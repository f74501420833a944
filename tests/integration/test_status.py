"""`msm status` and `msm lag --watch` on the real broker, with a real worker running every layer.

Status must list the worker in every layer's consumer group, count exactly the dead letters put
into each ``<ns>.dlq.<s>``, and agree with `msm lag --json` on every layer's lag; the watch must
see records coming in while a producer publishes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.cli import cli
from pipeline.client import Publisher
from pipeline.topology import Topology
from pipeline.topology.topics import LAYERS, TopicNames
from tests.worker_support import Worker, applied_topology

DOCUMENT: dict[str, Any] = {
    "delay_tiers": ["1s"],
    "events": {"thing.created": {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"}},
    "subscribers": {
        "janitor": {"events": ["thing.created"], "handler": "examples.handlers:cleanup"},
        "spare": {
            "events": ["thing.created"],
            "handler": "examples.handlers:cleanup",
            "canary": {"handler": "tests.integration.e2e_handlers:record", "percent": 5},
        },
    },
}
DEAD = 3  # dead letters put into <ns>.dlq.janitor; none in <ns>.dlq.spare


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Topology]:
    directory = tmp_path_factory.mktemp("status")
    with applied_topology(directory, DOCUMENT, kafka_bootstrap, admin) as applied:
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
        for i in range(DEAD):
            producer.produce(TopicNames(applied.namespace).dlq("janitor"), b"x", f"k{i}".encode())
        assert producer.flush(30) == 0
        yield applied


def msm(topology: Topology, *args: str, code: int = 0) -> str:
    args = ("--topology", str(topology.source_path), *args)
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.stdout


def status(topology: Topology) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(msm(topology, "status", "--json", "--sample-s", "0.5"))
    return document


def publish(topology: Topology, count: int, prefix: str) -> None:
    with Publisher.from_topology_file(topology.source_path) as pub:
        for i in range(count):
            pub.publish("thing.created", {"id": f"{prefix}-{i}", "size": i})


def test_status_shows_workers_dlq_and_the_same_lag_as_msm_lag(
    topology: Topology, tmp_path: Path
) -> None:
    groups = {layer: f"{topology.namespace}.{layer}" for layer in LAYERS}
    ledger = {"MSM_TEST_LEDGER": str(tmp_path / "ledger.jsonl")}  # the canary handler writes it
    with Worker(topology, LAYERS, tmp_path / "worker.log", env=ledger) as worker:
        worker.wait_ready(60)
        publish(topology, 10, "a")
        deadline = time.monotonic() + 60
        while True:  # every layer's group must have the worker as a member with partitions
            doc = status(topology)
            held = {x["layer"]: [w for w in x["workers"] if w["partitions"]] for x in doc["layers"]}
            if all(len(held[layer]) == 1 for layer in LAYERS):
                break
            assert time.monotonic() < deadline, (held, worker.tail())
            time.sleep(1)
        assert doc["broker"]["reachable"] is True
        assert len(doc["broker"]["brokers"]) >= 1
        assert doc["topology"]["namespace"] == topology.namespace
        assert doc["topology"]["missing_topics"] == []
        assert [x["group"] for x in doc["layers"]] == list(groups.values())
        hosts = {w["member_id"] for x in doc["layers"] for w in x["workers"]}
        assert len(hosts) == len(LAYERS)  # one member per layer app, all from one worker
        assert doc["dlq"] == [
            {
                "subscriber": "janitor",
                "topic": f"{topology.namespace}.dlq.janitor",
                "count": DEAD,
                "error": None,
            },
            {
                "subscriber": "spare",
                "topic": f"{topology.namespace}.dlq.spare",
                "count": 0,
                "error": None,
            },
        ]
        (canary,) = doc["canaries"]
        assert (canary["subscriber"], canary["percent"], canary["state"]) == (
            "spare",
            5.0,
            "configured",
        )
        assert worker.stop() == 0

    # With the worker gone the offsets stand still: 7 more events are the frontend's lag.
    publish(topology, 7, "b")
    doc = status(topology)
    lag_doc = json.loads(msm(topology, "lag", "--json", *_group_args(groups.values())))
    by_group = {g["group"]: g["total_lag"] for g in lag_doc["groups"]}
    assert {x["group"]: x["lag"] for x in doc["layers"]} == by_group
    assert by_group[groups["frontend"]] == 7
    assert all(x["workers"] == [] for x in doc["layers"])
    text = msm(topology, "status")
    assert "no worker runs this layer" in text


def _group_args(groups: Any) -> list[str]:
    return [a for g in groups for a in ("--group", g)]


def test_lag_watch_sees_records_coming_in(topology: Topology, kafka_bootstrap: str) -> None:
    # A group of its own that committed the ingress partitions and consumes nothing more.
    group = f"{topology.namespace}.watch"
    ingress = f"{topology.namespace}.in.thing.created"
    publish(topology, 2, "seed")
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(ingress, p, 0) for p in (0, 1)], asynchronous=False)
    consumer.close()
    stop = threading.Event()

    def keep_publishing() -> None:
        with Publisher.from_topology_file(topology.source_path) as pub:
            i = 0
            while not stop.is_set():
                pub.publish("thing.created", {"id": f"w-{i}", "size": i})
                i += 1
                time.sleep(0.01)

    publisher = threading.Thread(target=keep_publishing)
    publisher.start()
    try:
        time.sleep(0.5)
        args = ["lag", "--watch", "--json", "--count", "2", "--interval-s", "1"]
        out = msm(topology, *args, "--group", group)
    finally:
        stop.set()
        publisher.join(30)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert lines[0]["rates"]["seconds"] is None
    (row,) = [t for t in lines[1]["rates"]["topics"] if t["topic"] == ingress]
    assert row["layer"] == "frontend"
    assert row["rate_in"] > 0
    assert row["rate_out"] == 0  # the group consumes nothing
    assert row["trend"] == "growing"
