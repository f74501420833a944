"""Operator gating on a real broker with TWO delivery workers sharing a subscriber's partitions:
`msm subscriber pause|resume|drop|show` run as an operator would (the installed CLI).

Tasks are written to ``<ns>.sub.<s>`` the way flow control leaves them (as in
test_delivery_layer) and pushed to an HTTP endpoint in the test process.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.ops.control.record import DROP_REASON
from pipeline.tasks.reader import partition_for
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import minimal
from tests.integration._http_target import HttpTarget
from tests.integration._worker_proc import produce
from tests.worker_support import MSM, REPO, TopicReader, Worker, applied_topology

THING = "thing.created"
HOUR_MS = 3_600_000
QUIET_S = 4.0  # how long a paused subscriber must stay silent while tasks wait
APPLIED = "delivery {name}: paused by operator"


def document(target: HttpTarget) -> dict[str, Any]:
    doc = minimal()
    doc["delay_tiers"] = ["1s"]
    doc["schedules"] = {}
    doc["subscribers"] = {
        "gated": {"events": [THING], "endpoint": target.url("hook/gated")},
        "dropper": {"events": [THING], "endpoint": target.url("hook/dropper")},
    }
    return doc


@dataclass
class Setup:
    topology: Topology
    target: HttpTarget
    admin: AdminClient
    directory: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)

    @property
    def bootstrap(self) -> str:
        return self.topology.kafka.bootstrap_servers

    def partitions(self, topic: str) -> int:
        return next(p.partitions for p in plan_topics(self.topology) if p.name == topic)

    def start_worker(self, label: str) -> Worker:
        worker = Worker(self.topology, ["delivery"], self.directory / f"{label}.log")
        worker.wait_ready(90)
        self.workers.append(worker)
        return worker

    def msm(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(MSM), "--topology", str(self.topology.source_path), *args]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=REPO, check=False
        )

    def keys(self, subscriber: str, per_partition: int = 2) -> list[str]:
        """Keys covering every partition of the subscriber's topic ``per_partition`` times."""
        n = self.partitions(self.names.sub(subscriber))
        found: dict[int, list[str]] = {p: [] for p in range(n)}
        i = 0
        while any(len(v) < per_partition for v in found.values()):
            key = f"k{uuid.uuid4().hex[:6]}-{i}"
            bucket = found[partition_for(key.encode(), n)]
            if len(bucket) < per_partition:
                bucket.append(key)
            i += 1
        return [k for v in found.values() for k in v]

    def send(self, subscriber: str, keys: list[str], published_ms: int | None = None) -> list[str]:
        """Tasks for ``subscriber`` as flow control writes them; their event ids."""
        schema = load_schema(self.topology.events[THING].schema_path)
        records, ids = [], []
        for key in keys:
            event_id = f"ev-{uuid.uuid4().hex[:12]}"
            fields: dict[str, str | int] = {
                h.EVENT_ID: event_id,
                h.EVENT_TYPE: THING,
                h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
                h.KEY: key,
                h.PUBLISHED_AT: published_ms or int(time.time() * 1000),
                h.SUBSCRIBER: subscriber,
                h.ATTEMPT: 1,
            }
            value = wire.encode(schema, {"id": key, "size": 1, "colour": "red"})
            records.append((key.encode(), value, h.encode(fields)))
            ids.append(event_id)
        produce(self.bootstrap, self.names.sub(subscriber), records)
        return ids

    def delivered(self, subscriber: str) -> set[str]:
        return {r.event_id for r in self.target.requests(subscriber)}

    def owners(self, topic: str) -> int:
        """Members of the delivery group assigned partitions of ``topic``."""
        group = f"{self.topology.namespace}.delivery"
        described = self.admin.describe_consumer_groups([group])[group].result(timeout=10)
        return sum(
            any(tp.topic == topic for tp in m.assignment.topic_partitions)
            for m in described.members
        )

    def wait_owners(self, topic: str, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.owners(topic) != count:
            assert time.monotonic() < deadline, f"{topic} not shared by {count} workers"
            time.sleep(0.5)

    def lag(self, topic: str) -> int:
        """End offsets minus the delivery group's committed offsets on ``topic``."""
        group = f"{self.topology.namespace}.delivery"
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            parts = [TopicPartition(topic, p) for p in range(self.partitions(topic))]
            total = 0
            for tp in consumer.committed(parts, timeout=10):
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                total += high - max(tp.offset, 0)
            return total
        finally:
            consumer.close()

    def applied_within(self, worker: Worker, text: str, since: float, timeout_s: float) -> float:
        """Seconds from ``since`` (monotonic) until ``worker`` logged ``text``."""
        worker.wait_for_log(text, timeout_s)
        return time.monotonic() - since


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("gating")
    target = HttpTarget()
    with (
        target.running(),
        applied_topology(directory, document(target), kafka_bootstrap, admin) as topology,
    ):
        found = Setup(topology, target, admin, directory)
        try:
            found.start_worker("a")
            found.start_worker("b")
            found.wait_owners(found.names.sub("gated"), 2)
            yield found
        finally:
            for worker in found.workers:
                worker.stop()


def test_pause_holds_every_worker_survives_a_restart_and_resume_delivers_the_backlog(
    setup: Setup,
) -> None:
    topic = setup.names.sub("gated")
    warm = setup.send("gated", setup.keys("gated", 1))  # both workers deliver before the pause
    setup.target.wait_for("gated", lambda _: setup.delivered("gated") >= set(warm), "warm-up")

    started = time.monotonic()
    result = setup.msm("subscriber", "pause", "gated")
    returned = time.monotonic()
    assert result.returncode == 0, result.stderr
    assert "gated: paused by" in result.stdout
    a, b = setup.workers
    took = [setup.applied_within(w, APPLIED.format(name="gated"), returned, 10) for w in (a, b)]
    print(f"CLI ran {returned - started:.2f} s; pause seen {max(took):.2f} s after it returned")
    assert max(took) < 3.0

    # Behaviour: 1.5 s after the CLI returned, tasks on every partition (both workers' share)
    # wait: none is delivered while both workers run, and they stay in Kafka (lag).
    time.sleep(max(0.0, 1.5 - (time.monotonic() - returned)))
    held = setup.send("gated", setup.keys("gated", 3))
    time.sleep(QUIET_S)
    assert not setup.delivered("gated") & set(held)
    assert setup.lag(topic) >= len(held)

    shown = setup.msm("subscriber", "show", "gated", "--json")
    assert shown.returncode == 0, shown.stderr
    [state] = json.loads(shown.stdout)["subscribers"]
    assert state["paused"] is True
    assert "@" in state["paused_by"]
    assert state["paused_at"].endswith("Z")

    # A worker restarted while the subscriber is paused reads the pause before dispatching.
    assert b.stop() == 0, b.tail()
    setup.workers.remove(b)
    restarted = setup.start_worker("b2")
    setup.wait_owners(topic, 2)
    restarted.wait_for_log("control topic read; paused by operator: gated", 30)
    later = setup.send("gated", setup.keys("gated", 2))
    time.sleep(QUIET_S)
    assert not setup.delivered("gated") & {*held, *later}

    result = setup.msm("subscriber", "resume", "gated")
    assert result.returncode == 0, result.stderr
    everything = {*held, *later}
    requests = setup.target.wait_for(
        "gated",
        lambda _: setup.delivered("gated") >= everything,
        "the backlog after resume",
        timeout_s=30,
    )
    assert all(r.attempt == 1 for r in requests if r.event_id in everything)  # nothing failed


def test_drop_dead_letters_old_pending_tasks_and_delivers_the_rest(setup: Setup) -> None:
    assert setup.msm("subscriber", "pause", "dropper").returncode == 0
    for worker in setup.workers:
        worker.wait_for_log(APPLIED.format(name="dropper"), 10)
    old = setup.send("dropper", setup.keys("dropper", 1), int(time.time() * 1000) - 2 * HOUR_MS)
    new = setup.send("dropper", setup.keys("dropper", 1))

    result = setup.msm("subscriber", "drop", "dropper", "--before", "1h")
    assert result.returncode == 0, result.stderr
    assert "dead-lettering pending tasks published before" in result.stdout
    assert setup.msm("subscriber", "resume", "dropper").returncode == 0

    setup.target.wait_for(
        "dropper", lambda _: setup.delivered("dropper") >= set(new), "the new tasks"
    )
    topic = setup.names.dlq("dropper")
    with TopicReader(setup.bootstrap, topic, setup.partitions(topic)) as reader:
        reader.wait_for(
            lambda rs: {r.header.get(h.EVENT_ID) for r in rs} >= {e.encode() for e in old},
            "the old tasks dead-lettered",
        )
        letters = reader.poll(1.0)
    assert {r.header[h.EVENT_ID].decode() for r in letters} == set(old)  # never the new ones
    for letter in letters:
        assert letter.header[h.DLQ_REASON] == DROP_REASON.encode()
        [entry] = ErrorChain.from_json(letter.header[h.ERRORS]).errors
        assert entry.error_type == DROP_REASON
        assert "dropped by operator" in entry.message
        assert "@" in entry.message
    assert not setup.delivered("dropper") & set(old)

    listed = setup.msm("dlq", "list", "dropper", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {d["reason"] for d in json.loads(listed.stdout)["dead_letters"]} == {DROP_REASON}

    # Redriving them is the operator's undo: queued after the drop, they are delivered.
    redriven = setup.msm("dlq", "redrive", "dropper", "--yes")
    assert redriven.returncode == 0, redriven.stderr
    setup.target.wait_for(
        "dropper", lambda _: setup.delivered("dropper") >= set(old), "the redriven tasks"
    )


def test_unknown_subscriber_is_an_error_naming_it(setup: Setup) -> None:
    result = setup.msm("subscriber", "pause", "gatd")
    assert result.returncode == 1
    assert "unknown subscriber 'gatd'; did you mean 'gated'?" in result.stderr
