"""The scheduler layer on a real broker: `msm worker --layers scheduler` as a subprocess.

Records are published to ``<ns>.accepted`` exactly as the frontend writes them, with small
custom tiers (1s, 2s, 5s) so delays of 0.3 to 8 s cross several tiers, hops and the in-memory
hold. "Early" is judged on the ready record's own timestamp (set by the worker's producer when
it forwards), against ``msm.deliver_at``; the worker and this test share the machine's clock.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.scheduler_records import TIERED_AT
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.topology import Topology
from pipeline.topology.topics import plan_topics
from tests.fixtures.topologies import minimal
from tests.worker_support import Headers, Record, TopicReader, Worker, applied_topology

EVENT = "thing.created"


@pytest.fixture
def topology(tmp_path: Path, kafka_bootstrap: str, admin: AdminClient) -> Iterator[Topology]:
    doc = minimal()
    doc["delay_tiers"] = ["1s", "2s", "5s"]
    doc["events"][EVENT]["partitions"] = 3
    doc["subscribers"], doc["schedules"] = {}, {}
    with applied_topology(tmp_path, doc, kafka_bootstrap, admin) as t:
        yield t


def accepted_record(
    topology: Topology, key: str, seq: int, deliver_at: int | None
) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) the way the frontend writes an accepted event."""
    schema = load_schema(topology.events[EVENT].schema_path)
    fields: dict[str, str | int] = {
        h.EVENT_ID: str(uuid.uuid4()),
        h.EVENT_TYPE: EVENT,
        h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
        h.PUBLISHED_AT: int(time.time() * 1000),
    }
    if deliver_at is not None:
        fields[h.DELIVER_AT] = deliver_at
    value = wire.encode(schema, {"id": key, "size": seq, "colour": "red"})
    return key.encode(), value, [*h.encode(fields), ("x-seq", str(seq).encode())]


def publish(topology: Topology, records: list[tuple[bytes, bytes, Headers]]) -> None:
    # murmur2 like the frontend's (aiokafka's) partitioner, so keys land where it puts them
    producer = Producer(
        {
            "bootstrap.servers": topology.kafka.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    for key, value, headers in records:
        out: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(topology.namespace + ".accepted", value, key, headers=out)
    assert producer.flush(30) == 0


def partitions(topology: Topology) -> int:
    """Of accepted, ready and the delay tiers."""
    return next(p.partitions for p in plan_topics(topology) if p.name.endswith(".ready"))


def ids(records: list[Record]) -> Counter[bytes]:
    return Counter(r.header[h.EVENT_ID] for r in records)


def assert_never_early(records: list[Record]) -> list[int]:
    """Every copy reached ready at or after its deliver_at; returns the lateness (ms) of each."""
    late = []
    for r in records:
        due = int(r.header[h.DELIVER_AT])
        assert r.timestamp_ms >= due, (
            f"{r.header[h.EVENT_ID]!r} ready {due - r.timestamp_ms} ms early"
        )
        late.append(r.timestamp_ms - due)
    return late


def test_delays_cross_tiers_never_early_and_immediate_events_keep_key_order(
    topology: Topology, tmp_path: Path
) -> None:
    names, shared = topology.namespace, partitions(topology)
    with Worker(topology, ["scheduler"], tmp_path / "worker.log") as worker:
        worker.wait_ready()
        now = int(time.time() * 1000)
        delays = [300 + 200 * i for i in range(40)]  # 0.3 s .. 8.1 s
        delayed = [accepted_record(topology, f"d{i}", i, now + d) for i, d in enumerate(delays)]
        immediate = [accepted_record(topology, f"k{i % 3}", i, None) for i in range(30)]
        records = [r for pair in zip(delayed, immediate, strict=False) for r in pair]
        publish(topology, records + delayed[len(immediate) :])
        expected = {dict(r[2])[h.EVENT_ID]: r for r in delayed + immediate}
        with TopicReader(topology.kafka.bootstrap_servers, f"{names}.ready", shared) as ready:
            ready.wait_for(lambda rs: set(ids(rs)) >= set(expected), "every event", 25)
            got = ready.poll(0.5)
        tiers: dict[str, list[Record]] = {}
        for topic in ("delay.1s", "delay.2s", "delay.5s", "accepted"):
            name = f"{names}.{topic}"
            with TopicReader(topology.kafka.bootstrap_servers, name, shared) as reader:
                tiers[topic] = reader.poll(1.0)
        assert worker.stop() == 0, worker.tail()

    assert ids(got) == Counter(set(expected)), "each event exactly once, nothing else"
    by_id = {r.header[h.EVENT_ID]: r for r in got}
    for event_id, (key, value, headers) in expected.items():
        out = by_id[event_id]
        assert (out.key, out.value, out.headers) == (key, value, headers), "bytes untouched"
    lateness = assert_never_early([by_id[dict(r[2])[h.EVENT_ID]] for r in delayed])
    assert max(lateness) < 1000, f"lateness {sorted(lateness)}"  # ~10 ms when idle

    for k in (b"k0", b"k1", b"k2"):  # immediate events keep their per-key order
        seqs = [int(r.header["x-seq"]) for r in got if r.key == k]
        assert seqs == sorted(seqs)
        assert len(seqs) == 10

    accepted = {r.header[h.EVENT_ID]: r.partition for r in tiers.pop("accepted")}
    assert all(r.partition == accepted[r.header[h.EVENT_ID]] for r in got), "same partition"
    # the delayed events went through the tiers, carrying msm.tiered_at and nothing else new
    assert all(tiers.values()), {t: len(rs) for t, rs in tiers.items()}
    immediate_ids = {dict(r[2])[h.EVENT_ID] for r in immediate}
    for tier, rs in tiers.items():
        for r in rs:
            assert r.partition == accepted[r.header[h.EVENT_ID]]
            event_id = r.header[h.EVENT_ID]
            assert event_id not in immediate_ids
            key, value, headers = expected[event_id]
            assert (r.key, r.value, r.headers[:-1]) == (key, value, headers), tier
            assert r.headers[-1][0] == TIERED_AT
    longest = dict(delayed[-1][2])[h.EVENT_ID]
    assert longest in {r.header[h.EVENT_ID] for r in tiers["delay.5s"]}


def test_sigkill_while_holding_loses_nothing_and_delivers_nothing_early(
    topology: Topology, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    bootstrap, ready_topic = topology.kafka.bootstrap_servers, f"{topology.namespace}.ready"
    delays = [300 + 150 * i for i in range(40)]  # 0.3 s .. 6.15 s
    with Worker(topology, ["scheduler"], log) as first:
        first.wait_ready()
        now = int(time.time() * 1000)
        delayed = [accepted_record(topology, f"d{i}", i, now + d) for i, d in enumerate(delays)]
        publish(topology, delayed)
        time.sleep(1.6)
        first.kill()
    killed_at = int(time.time() * 1000)
    deliver_at = [int(dict(r[2])[h.DELIVER_AT]) for r in delayed]
    # some were due within the hold window (in memory, uncommitted), some further on in tiers
    assert any(killed_at < d <= killed_at + 1000 for d in deliver_at)
    assert any(d > killed_at + 2000 for d in deliver_at)

    with Worker(topology, ["scheduler"], log) as second:
        second.wait_ready()
        with TopicReader(bootstrap, ready_topic, partitions(topology)) as ready:
            wanted = {dict(r[2])[h.EVENT_ID] for r in delayed}
            ready.wait_for(lambda rs: set(ids(rs)) >= wanted, "every event after the restart", 30)
            got = ready.poll(0.5)
        assert second.stop() == 0, second.tail()
    assert set(ids(got)) == wanted
    assert_never_early(got)  # every copy, including any the killed worker had forwarded
