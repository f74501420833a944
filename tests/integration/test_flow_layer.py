"""Flow control's fan-out on a real broker (`msm worker --layers flow`), and the scheduler
forwarding a retry (a record with ``msm.target``) to its subscriber's queue when due.

Events are written to ``<ns>.ready`` the way the scheduler leaves them (headers msm.id, type,
schema, key, published_at; Avro single-object payload) and checked where flow leaves them:
``<ns>.sub.<subscriber>`` and the PENDING records on ``<ns>.tasks``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.scheduler_records import TIERED_AT
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.tasks import TaskState, parse_record
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import minimal
from tests.integration._worker_proc import Sent, produce
from tests.worker_support import Record, TopicReader, Worker, applied_topology

THING, OTHER = "thing.created", "other.happened"
HANDLER = "examples.handlers:cleanup"
ENDPOINT = "http://localhost:9/hook"


def document() -> dict[str, object]:
    doc = minimal()
    doc["delay_tiers"] = ["1s", "2s"]
    doc["events"][THING]["partitions"] = 3
    doc["schedules"] = {}
    doc["subscribers"] = {
        "big": {"events": [THING], "filter": "size > 10", "handler": HANDLER},
        "vip": {"events": [THING, OTHER], "filter": "meta.key == 'vip'", "endpoint": ENDPOINT},
        "all": {"events": [THING], "endpoint": ENDPOINT},
        "broken": {"events": [THING], "filter": "no_such_field > 1", "handler": HANDLER},
    }
    return doc


def partitions(topology: Topology, topic: str) -> int:
    return next(p.partitions for p in plan_topics(topology) if p.name == topic)


def ready_event(topology: Topology, event: str, key: str, record: dict[str, object]) -> Sent:
    """(key, value, headers) as the scheduler leaves an event on ready."""
    schema = load_schema(topology.events[event].schema_path)
    fields: dict[str, str | int] = {
        h.EVENT_ID: f"ev-{uuid.uuid4().hex[:12]}",
        h.EVENT_TYPE: event,
        h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
        h.KEY: key,
        h.PUBLISHED_AT: int(time.time() * 1000),
    }
    return key.encode(), wire.encode(schema, record), [*h.encode(fields), ("x-app", b"kept")]


def read(topology: Topology, topic: str, count: int, timeout_s: float = 20) -> list[Record]:
    bootstrap = topology.kafka.bootstrap_servers
    with TopicReader(bootstrap, topic, partitions(topology, topic)) as reader:
        reader.wait_for(lambda rs: len(rs) >= count, f"{count} records on {topic}", timeout_s)
        return reader.poll(0.5)  # a duplicate or a stray task would show up too


def test_events_fan_out_to_matching_subscribers_with_task_headers_and_pending_records(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    with applied_topology(tmp_path, document(), kafka_bootstrap, admin) as topology:
        names = TopicNames(topology.namespace)
        small = ready_event(topology, THING, "a", {"id": "a", "size": 5, "colour": "red"})
        large = ready_event(topology, THING, "vip", {"id": "vip", "size": 50, "colour": "red"})
        other_vip = ready_event(topology, OTHER, "vip", {"key": "vip"})
        other = ready_event(topology, OTHER, "x", {"key": "x"})
        events = [small, large, other_vip, other]
        ids = [dict(e[2])[h.EVENT_ID] for e in events]
        expected = {
            "all": [ids[0], ids[1]],
            "big": [ids[1]],
            "vip": [ids[1], ids[2]],
            "broken": [],
        }
        with Worker(topology, ["flow"], tmp_path / "worker.log") as worker:
            worker.wait_ready()
            produce(kafka_bootstrap, names.ready, events)
            tasks = read(topology, names.tasks, 5)
            queues = {s: read(topology, names.sub(s), len(e)) for s, e in expected.items() if e}
            broken = read(topology, names.sub("broken"), 0, 1)
            assert worker.stop() == 0, worker.tail()
            log = worker.log()

    by_id = {dict(e[2])[h.EVENT_ID]: e for e in events}
    for subscriber, records in queues.items():
        assert sorted(r.header[h.EVENT_ID] for r in records) == sorted(expected[subscriber])
        for r in records:
            key, value, headers = by_id[r.header[h.EVENT_ID]]
            assert (r.key, r.value) == (key, value), "key and payload bytes untouched"
            assert r.headers == [*headers, (h.SUBSCRIBER, subscriber.encode()), (h.ATTEMPT, b"1")]
    assert broken == [], "a filter that fails is no match"
    assert log.count("filter of broken failed") == 1, "logged once, not per event"

    states = [parse_record(r.value) for r in tasks]
    assert sorted((s.subscriber, s.event_id.encode()) for s in states) == sorted(
        (s, i) for s, got in expected.items() for i in got
    )
    for r, s in zip(tasks, states, strict=True):
        assert r.key == s.event_id.encode(), "keyed by event id"
        assert s.state == TaskState.PENDING
        assert s.attempt == 1
        assert s.published_at_ms == int(dict(by_id[r.key][2])[h.PUBLISHED_AT])
        assert s.event_type in (THING, OTHER)


def test_the_scheduler_sends_a_due_retry_to_its_target_queue_never_early(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    with applied_topology(tmp_path, document(), kafka_bootstrap, admin) as topology:
        names = TopicNames(topology.namespace)
        key, value, headers = ready_event(topology, THING, "r", {"id": "r", "size": 1})
        with Worker(topology, ["scheduler"], tmp_path / "worker.log") as worker:
            worker.wait_ready()
            due = int(time.time() * 1000) + 1500
            retry = [
                *headers,
                (h.SUBSCRIBER, b"all"),
                (h.ATTEMPT, b"2"),
                (h.DELIVER_AT, str(due).encode()),
                (h.TARGET, names.sub("all").encode()),
            ]
            produce(kafka_bootstrap, names.accepted, [(key, value, retry)])
            [got] = read(topology, names.sub("all"), 1)
            ready = read(topology, names.ready, 0, 0.5)
            assert worker.stop() == 0, worker.tail()

    assert got.timestamp_ms >= due, f"{due - got.timestamp_ms} ms early"
    assert (got.key, got.value) == (key, value)
    assert h.TARGET not in got.header
    assert TIERED_AT not in got.header
    assert got.header[h.ATTEMPT] == b"2"
    assert got.header[h.DELIVER_AT] == str(due).encode()
    assert ready == [], "a retry never goes back through ready (and flow's fan-out)"
