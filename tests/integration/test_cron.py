"""Cron schedules on a real broker: two `msm worker --layers scheduler` processes, one firing.

The schedule ticks every second (croniter's sixth field is seconds), so a few seconds of two
workers, and a hand-over when the owner stops, show each tick fired exactly once with no gap.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.scheduling import tick_id
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.topology import Topology
from tests.fixtures.topologies import minimal
from tests.worker_support import Record, TopicReader, Worker, applied_topology

OWNING = "cron: owning"


@pytest.fixture
def topology(tmp_path: Path, kafka_bootstrap: str, admin: AdminClient) -> Iterator[Topology]:
    doc = minimal()
    doc["subscribers"] = {}
    doc["schedules"] = {
        "heartbeat": {"event": "other.happened", "cron": "* * * * * *", "payload": {"key": "hb"}}
    }
    with applied_topology(tmp_path, doc, kafka_bootstrap, admin) as t:
        yield t


def ready_partitions(topology: Topology) -> int:
    return max(e.partitions for e in topology.events.values())


def test_two_workers_fire_each_tick_once_across_a_hand_over(
    topology: Topology, tmp_path: Path
) -> None:
    bootstrap, ready = topology.kafka.bootstrap_servers, f"{topology.namespace}.ready"
    with Worker(topology, ["scheduler"], tmp_path / "a.log") as a:
        a.wait_ready()
        a.wait_for_log(OWNING)  # alone in the group, so it owns the schedules partition
        with Worker(topology, ["scheduler"], tmp_path / "b.log") as b:
            b.wait_ready()  # a rebalance: the partition may move to b or stay with a
            time.sleep(2.0)
            assert a.stop() == 0, a.tail()  # b is left to fire, reading what a recorded
            stopped = datetime.now(UTC)
            b.wait_for_log(OWNING, timeout_s=20)
            time.sleep(2.5)
            assert b.stop() == 0, b.tail()
    with TopicReader(bootstrap, ready, ready_partitions(topology)) as reader:
        records = reader.poll(2.0)

    counts = Counter(r.header[h.EVENT_ID] for r in records)
    assert counts, "no tick fired"
    assert max(counts.values()) == 1, "a tick fired more than once"
    ticks = sorted(tick_of(r) for r in records)
    seconds = [int(t.timestamp()) for t in ticks]
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a tick was skipped"
    assert ticks[-1] > stopped, "the second worker went on firing"
    for r in records:
        assert r.header[h.EVENT_ID] == tick_id("heartbeat", tick_of(r)).encode()
        assert r.header[h.EVENT_TYPE] == b"other.happened"
        assert r.key == r.header[h.EVENT_ID]  # the event has no key field
        schemas = EventSchemas.load(topology.events["other.happened"].schema_path)
        assert wire.decode(r.value, schemas) == {"key": "hb"}


def tick_of(record: Record) -> datetime:
    return datetime.fromtimestamp(int(record.header[h.DELIVER_AT]) / 1000, UTC)
