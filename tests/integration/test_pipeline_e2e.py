"""Frontend and scheduler together: one ``msm worker --layers frontend,scheduler`` process.

Events enter at ``<ns>.in.file.uploaded`` (the Publisher's Avro, older Avro, raw JSON) and are
checked where the second layer leaves them, on ``<ns>.ready``: per-key order of immediate events,
delayed events never early, and every format normalised to the same bytes. Small tiers (1s, 2s,
5s) let delays of 0.5 to 6 s cross the tiers and the in-memory hold within seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas, load_schema
from pipeline.client import Publisher
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.integration._worker_proc import (
    SCHEMAS,
    Sent,
    as_json,
    file_uploaded,
    frontend_document,
    keyed,
    produce,
)
from tests.worker_support import Record, TopicReader, Worker, applied_topology

EVENT = "file.uploaded"
PARTITIONS = 3
V1 = load_schema(SCHEMAS / "file_uploaded.v1.avsc")
V2 = load_schema(SCHEMAS / "file_uploaded.v2.avsc")
CURRENT = EventSchemas.load(SCHEMAS / "file_uploaded.v2.avsc", [])
JSON_CT = (h.CONTENT_TYPE, b"application/json")


@dataclass(frozen=True)
class Pipeline:
    topology: Topology
    bootstrap: str
    publisher: Publisher
    ready: TopicReader

    @property
    def ingress(self) -> str:
        return TopicNames(self.topology.namespace).ingress(EVENT)


@pytest.fixture(scope="module")
def pipe(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Pipeline]:
    directory = tmp_path_factory.mktemp("pipeline")
    document = {**frontend_document(partitions=PARTITIONS), "delay_tiers": ["1s", "2s", "5s"]}
    with applied_topology(directory, document, kafka_bootstrap, admin) as topology:
        ready_topic = TopicNames(topology.namespace).ready
        worker = Worker(topology, ["frontend", "scheduler"], directory / "worker.log")
        with worker, TopicReader(kafka_bootstrap, ready_topic, PARTITIONS) as ready:
            publisher = Publisher(topology)
            try:
                print(f"worker ready {worker.wait_ready(60):.2f} s after launch")
                yield Pipeline(topology, kafka_bootstrap, publisher, ready)
            finally:
                publisher.close()
            code = worker.stop()
            assert code == 0, worker.tail()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _current(record: dict[str, object]) -> bytes:
    """What the frontend must make of ``record`` in any format: Avro single-object, v2."""
    return wire.encode(V2, {"sha256": None, **record})


def _size(r: Record) -> int:
    decoded = wire.decode(r.value, CURRENT)
    assert isinstance(decoded, dict)
    return int(decoded["size"])


def test_per_key_order_of_immediate_events_survives_both_layers(pipe: Pipeline) -> None:
    count = 100
    avro_keys = [_unique(f"avro{i}") for i in range(2)]
    json_keys = [_unique(f"json{i}") for i in range(2)]
    for seq in range(count):  # interleaved across keys, in order per key
        for k in avro_keys:
            pipe.publisher.publish(EVENT, file_uploaded(k, size=seq), wait=False)
    pipe.publisher.flush()
    sent: list[Sent] = [
        (k.encode(), as_json(file_uploaded(k, size=seq)), [JSON_CT])
        for seq in range(count)
        for k in json_keys
    ]
    where = produce(pipe.bootstrap, pipe.ingress, sent)
    json_partition = {k: p for (k, _, _), (p, _) in zip(sent, where, strict=True)}

    keys = [k.encode() for k in avro_keys + json_keys]
    pipe.ready.wait_for(
        lambda rs: sum(r.key in keys for r in rs) >= count * len(keys), "every ordered event", 30
    )
    got = pipe.ready.poll(0.5)  # anything extra (a duplicate) would show up too
    for key in keys:
        mine = sorted((r for r in got if r.key == key), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1, f"{key!r}: one key, one partition"
        if key in json_partition:
            assert mine[0].partition == json_partition[key], "the ingress partition, every hop"
        assert [_size(r) for r in mine] == list(range(count)), f"{key!r}: in order, no duplicate"
        assert len({r.header[h.EVENT_ID] for r in mine}) == count
        assert all(h.DELIVER_AT not in r.header for r in mine)


def test_delayed_events_all_reach_ready_never_early_as_normalised_bytes(pipe: Pipeline) -> None:
    delays_ms = [500 + 250 * i for i in range(23)]  # 0.5 s .. 6 s
    expected: dict[bytes, tuple[int, bytes]] = {}  # key -> (delay, current-version bytes)
    json_sent: list[Sent] = []
    start = int(time.time() * 1000)
    for i, delay in enumerate(delays_ms):
        key = _unique(f"delayed{i}")
        record = file_uploaded(key, size=i)
        expected[key.encode()] = (delay, _current(record))
        if i % 2:  # JSON, delayed by the frontend from msm.delay_ms
            headers = [JSON_CT, (h.DELAY, str(delay).encode())]
            json_sent.append((key.encode(), as_json(record), headers))
        else:  # Avro from the Publisher, which stamps msm.deliver_at itself
            pipe.publisher.publish(EVENT, record, delay=timedelta(milliseconds=delay), wait=False)
    produce(pipe.bootstrap, pipe.ingress, json_sent)
    pipe.publisher.flush()

    got = keyed(pipe.ready, list(expected), "every delayed event", 30)
    late = []
    for r in got:
        due = int(r.header[h.DELIVER_AT])
        assert r.timestamp_ms >= due, f"{r.key!r} reached ready {due - r.timestamp_ms} ms early"
        late.append(r.timestamp_ms - due)
        delay, value = expected[r.key or b""]
        assert due >= start + delay, "deliver_at is publish time + delay"
        assert r.value == value, "the frontend's normalised bytes, untouched"
        assert r.header[h.SCHEMA_FINGERPRINT] == V2.fingerprint_hex.encode()
        assert h.DELAY not in r.header
        assert h.CONTENT_TYPE not in r.header
    assert len(got) == len(expected), "each delayed event once"
    print(f"lateness ms: median {sorted(late)[len(late) // 2]}, max {max(late)}")


def test_old_avro_json_and_current_avro_arrive_byte_identical(pipe: Pipeline) -> None:
    file_id = _unique("formats")
    record = file_uploaded(file_id)
    ids = {fmt: f"{file_id}-{fmt}" for fmt in ("v1", "json", "v2")}
    avro_ct = (h.CONTENT_TYPE, wire.CONTENT_TYPE.encode())
    raw: list[Sent] = [
        (file_id.encode(), wire.encode(V1, record), [avro_ct, (h.EVENT_ID, ids["v1"].encode())]),
        (file_id.encode(), as_json(record), [JSON_CT, (h.EVENT_ID, ids["json"].encode())]),
    ]
    produce(pipe.bootstrap, pipe.ingress, raw)
    pipe.publisher.publish(EVENT, record, event_id=ids["v2"])

    wanted = set(ids.values())
    pipe.ready.wait_for(
        lambda rs: wanted <= {r.header.get(h.EVENT_ID, b"").decode() for r in rs}, "every format"
    )
    got = [r for r in pipe.ready.records if r.key == file_id.encode()]
    assert sorted(r.header[h.EVENT_ID].decode() for r in got) == sorted(wanted), "each once"
    assert {r.value for r in got} == {_current(record)}, "byte-identical, current version"
    assert len({r.partition for r in got}) == 1
    for r in got:
        assert r.header[h.EVENT_TYPE] == EVENT.encode()
        assert r.header[h.SCHEMA_FINGERPRINT] == V2.fingerprint_hex.encode()
        assert h.CONTENT_TYPE not in r.header
