"""A subscriber's ``rate_limit`` is global: two workers together run its tasks at that rate.

There is no shared counter: each worker's gate refills at the rate times its share of the gated
topic's partitions (:meth:`pipeline.gate.pump.Pump.set_owned`), so the shares sum to the rate
whatever the assignment. That sum is only reached while every partition has work, so the keys
here put exactly the same number of events on each partition, and they are published only once
every layer's consumer group has settled with both workers in it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from pipeline.client import Publisher
from pipeline.tasks.reader import partition_for
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.worker_support import TopicReader, Worker, applied_topology

LAYERS = ["frontend", "scheduler", "flow", "delivery", "execution"]
PARTITIONS = 4
PER_PARTITION = 25
RATE = 20.0  # per second: the subscriber's rate_limit below
BURST = 2  # tokens the two workers' buckets hold between them at the start (default_burst)
SETTLED_S = 2.0  # every group keeps one two-member assignment this long before publishing

DOCUMENT: dict[str, Any] = {
    "events": {
        "other.happened": {"schema": "schemas/other.avsc", "partitions": PARTITIONS, "key": "key"}
    },
    "subscribers": {
        "paced": {
            "events": ["other.happened"],
            "handler": "tests.integration.rate_handlers:record",
            "rate_limit": "20/s",
            "concurrency": {"min": 1, "max": PARTITIONS},
        },
    },
}

Assignment = dict[str, list[tuple[int, ...]]]  # group -> each member's partitions (gated topic)


def _even_keys(tag: str) -> list[str]:
    """Keys that Kafka's default partitioner spreads exactly evenly over the partitions."""
    buckets: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    i = 0
    while any(len(keys) < PER_PARTITION for keys in buckets.values()):
        key = f"{tag}-{i}"
        keys = buckets[partition_for(key.encode(), PARTITIONS)]
        if len(keys) < PER_PARTITION:
            keys.append(key)
        i += 1
    return [key for p in range(PARTITIONS) for key in buckets[p]]


def _assignment(admin: AdminClient, topology: Topology) -> Assignment | None:
    """What each layer group's members own; None unless all five groups are stable with two
    members that both own partitions (of ``sub.paced`` and ``exec.paced`` for the gates)."""
    names = TopicNames(topology.namespace)
    gated = {"delivery": names.sub("paced"), "execution": names.execution("paced")}
    groups = [f"{topology.namespace}.{layer}" for layer in LAYERS]
    found: Assignment = {}
    for group, future in admin.describe_consumer_groups(groups).items():
        try:
            description = future.result(timeout=10)
        except Exception:  # not there yet
            return None
        if description.state != ConsumerGroupState.STABLE or len(description.members) != 2:
            return None
        topic = gated.get(group.rpartition(".")[2])
        owned = [
            tuple(
                sorted(
                    tp.partition
                    for tp in member.assignment.topic_partitions
                    if topic is None or tp.topic == topic
                )
            )
            for member in description.members
        ]
        if not all(owned):
            return None
        if topic is not None and sorted(p for ps in owned for p in ps) != list(range(PARTITIONS)):
            return None
        found[group] = sorted(owned)
    return found


def _wait_settled(
    admin: AdminClient, topology: Topology, workers: list[Worker], timeout_s: float = 60
) -> Assignment:
    """The assignment, once it has stayed the same for :data:`SETTLED_S`."""
    deadline = time.monotonic() + timeout_s
    last: Assignment | None = None
    since = time.monotonic()
    while True:
        for worker in workers:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.tail()}")
        current = _assignment(admin, topology)
        now = time.monotonic()
        if current is None or current != last:
            last, since = current, now
        elif now - since >= SETTLED_S:
            return current
        if now > deadline:
            tails = "\n\n".join(w.tail(3000) for w in workers)
            raise AssertionError(f"groups did not settle in {timeout_s} s: {last}\n{tails}")
        time.sleep(0.25)


def _ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _wait_ledger(path: Path, tag: str, count: int, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [r for r in _ledger(path) if str(r["key"]).startswith(tag)]
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} of {count} tasks ran in {timeout_s} s")
        time.sleep(0.1)


def test_two_workers_share_one_rate_limit(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    env = {"MSM_TEST_LEDGER": str(ledger)}
    with applied_topology(tmp_path, DOCUMENT, kafka_bootstrap, admin) as topology:
        a = Worker(topology, LAYERS, tmp_path / "a.log", env=env)
        b = Worker(topology, LAYERS, tmp_path / "b.log", env=env)
        with a, b:
            a.wait_ready(60)
            b.wait_ready(60)
            before = _wait_settled(admin, topology, [a, b])
            tag = uuid.uuid4().hex[:8]
            keys = _even_keys(tag)
            publisher = Publisher(topology)
            try:
                publisher.publish_many("other.happened", [{"key": k} for k in keys])
            finally:
                publisher.close()
            rows = _wait_ledger(ledger, tag, len(keys), timeout_s=30)
            after = _assignment(admin, topology)
            for worker in (a, b):
                assert worker.stop() == 0, worker.tail()

        sub = TopicNames(topology.namespace).sub("paced")
        with TopicReader(kafka_bootstrap, sub, PARTITIONS) as reader:
            records = reader.wait_for(lambda rs: len(rs) >= len(keys), f"{len(keys)} in {sub}")
    # The keys' partitions were computed here with the same murmur2 as Kafka's partitioner.
    placed = {(r.key or b"").decode(): r.partition for r in records}
    assert placed == {k: partition_for(k.encode(), PARTITIONS) for k in keys}
    assert Counter(placed.values()) == dict.fromkeys(range(PARTITIONS), PER_PARTITION)

    assert sorted(r["key"] for r in rows) == sorted(keys)  # each task ran once
    assert before == after, "a rebalance during the run"
    pids = Counter(r["pid"] for r in rows)
    assert set(pids) == {a.proc.pid, b.proc.pid}, pids  # both workers ran tasks
    starts = sorted(r["start"] for r in rows)
    rate = (len(starts) - BURST) / (starts[-1] - starts[0])
    print(f"aggregate rate {rate:.2f}/s over {starts[-1] - starts[0]:.2f} s; per worker {pids}")
    assert abs(rate - RATE) <= 0.1 * RATE, (rate, pids)
