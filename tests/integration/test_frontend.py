"""The frontend layer inside a real `msm worker` process, against the real broker.

One worker (``--layers frontend`` with HTTP) serves the whole module in its own namespace; every
test tells its records apart by unique keys or ids.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas, load_schema
from pipeline.client.ids import event_id_time
from pipeline.tasks.reader import partition_for
from pipeline.topology import Topology
from pipeline.topology.topics import HEADROOM, TopicNames
from tests.integration._worker_proc import (
    SCHEMAS,
    HttpWorker,
    Sent,
    as_json,
    file_uploaded,
    frontend_document,
    keyed,
    produce,
)
from tests.worker_support import Headers, Record, TopicReader, applied_topology

V1 = load_schema(SCHEMAS / "file_uploaded.v1.avsc")
V2 = load_schema(SCHEMAS / "file_uploaded.v2.avsc")
CURRENT = EventSchemas.load(SCHEMAS / "file_uploaded.v2.avsc", [])
MAX_BYTES = 512


@dataclass(frozen=True)
class Frontend:
    topology: Topology
    bootstrap: str
    worker: HttpWorker
    ready: TopicReader  # events due now go straight to ready; delayed ones to accepted
    accepted: TopicReader
    rejected: TopicReader
    http_port: int
    startup_s: float

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)

    @property
    def ingress(self) -> str:
        return self.names.ingress("file.uploaded")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fe(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    admin: AdminClient,
) -> Iterator[Frontend]:
    directory = tmp_path_factory.mktemp("frontend")
    document = frontend_document(max_bytes=MAX_BYTES)
    with applied_topology(directory, document, kafka_bootstrap, admin) as topology:
        port = _free_port()
        worker = HttpWorker(topology, directory / "worker.log", port)
        names = TopicNames(topology.namespace)
        ready = TopicReader(kafka_bootstrap, names.ready, 3)
        accepted = TopicReader(kafka_bootstrap, names.accepted, 3)
        rejected = TopicReader(kafka_bootstrap, names.rejected, 3)
        try:
            startup = worker.wait_ready()
            yield Frontend(
                topology, kafka_bootstrap, worker, ready, accepted, rejected, port, startup
            )
        finally:
            code = worker.stop()
            ready.close()
            accepted.close()
            rejected.close()
        assert code == 0, worker.tail()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_worker_starts_within_a_few_seconds(fe: Frontend) -> None:
    print(f"worker ready {fe.startup_s:.2f} s after launch")
    assert fe.startup_s < 15


Make = Callable[[str], bytes]
BAD: dict[str, tuple[Make, str, str]] = {
    "unknown_fingerprint": (
        lambda f: b"\xc3\x01" + b"\x13" * 8 + b"\x02a",
        "unknown_fingerprint",
        "",
    ),
    "undecodable_bytes": (lambda f: b"\x00\x9f\xffnot anything", "invalid_json", ""),
    "truncated_avro": (
        lambda f: wire.encode(V2, {**file_uploaded(f), "sha256": None})[:-4],
        "truncated",
        "",
    ),
    "json_not_a_record": (lambda f: as_json([f, 1]), "schema_mismatch", ""),
    "missing_field": (
        lambda f: as_json({k: v for k, v in file_uploaded(f).items() if k != "owner_id"}),
        "missing_field",
        "owner_id",
    ),
    "wrong_type": (
        lambda f: as_json({**file_uploaded(f), "size": "big"}),
        "schema_mismatch",
        "size",
    ),
    "oversize": (
        lambda f: as_json({**file_uploaded(f), "path": "/" + "x" * MAX_BYTES}),
        "oversize",
        "",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_is_rejected_with_its_reason_and_the_next_event_flows(
    fe: Frontend, kind: str
) -> None:
    make, reason, field = BAD[kind]
    file_id = _unique(kind)
    bad_key, good_key = f"{file_id}-bad".encode(), f"{file_id}-good".encode()
    bad_value = make(file_id)
    original: Headers = [("x-test", kind.encode()), ("traceparent", b"00-ab-cd-01")]
    good: Sent = (good_key, as_json(file_uploaded(file_id)), [])
    (where, _) = produce(fe.bootstrap, fe.ingress, [(bad_key, bad_value, original), good])

    [rejected] = keyed(fe.rejected, [bad_key], f"the {kind} reject")
    keyed(fe.ready, [good_key], "the good event after it")
    found = rejected.header
    assert found[h.REJECT_REASON] == reason.encode()
    assert found[h.REJECT_MESSAGE], "a readable message"
    assert found[h.REJECT_FIELD] == field.encode()
    assert found[h.SOURCE_TOPIC] == fe.ingress.encode()
    assert (int(found[h.SOURCE_PARTITION]), int(found[h.SOURCE_OFFSET])) == where
    assert rejected.value == bad_value, "the original bytes"
    assert rejected.headers[: len(original)] == original, "the original headers first"
    assert not [r for r in fe.ready.records if r.key == bad_key]


def test_avro_old_and_current_and_json_arrive_identical(fe: Frontend) -> None:
    file_id = _unique("formats")
    record = file_uploaded(file_id)
    avro = (h.CONTENT_TYPE, wire.CONTENT_TYPE.encode())
    json_ct = (h.CONTENT_TYPE, b"application/json")
    formats: dict[str, tuple[bytes, Headers]] = {
        "v1": (wire.encode(V1, record), [avro]),
        "v2": (wire.encode(V2, {**record, "sha256": None}), [avro]),
        "json": (as_json(record), [json_ct]),
        "json-sniffed": (as_json(record), []),  # no content-type: JSON is recognised
    }
    ids = {fmt: f"{file_id}-{fmt}" for fmt in formats}
    sent = [
        (ids[fmt].encode(), value, [*headers, (h.EVENT_ID, ids[fmt].encode())])
        for fmt, (value, headers) in formats.items()
    ]
    produce(fe.bootstrap, fe.ingress, sent)
    got = keyed(fe.ready, [k for k, _, _ in sent], "every format")
    by_id = {r.header[h.EVENT_ID].decode(): r for r in got}
    assert set(by_id) == set(ids.values()), "producer-given ids are kept"
    current = formats["v2"][0]
    assert {r.value for r in got} == {current}, "normalised to the current version"
    for r in got:
        assert r.header[h.EVENT_TYPE] == b"file.uploaded"
        assert r.header[h.SCHEMA_FINGERPRINT] == V2.fingerprint_hex.encode()
        assert int(r.header[h.PUBLISHED_AT]) > 1_700_000_000_000
    assert h.CONTENT_TYPE not in by_id[ids["json"]].header


def test_an_event_without_id_gets_a_uuid7(fe: Frontend) -> None:
    key = _unique("noid").encode()
    produce(fe.bootstrap, fe.ingress, [(key, as_json(file_uploaded(key.decode())), [])])
    [r] = keyed(fe.ready, [key], "the event without id")
    assert event_id_time(r.header[h.EVENT_ID].decode()) is not None


def _keys_over_partitions(prefix: str, count: int, partitions: int) -> list[str]:
    """Keys whose i-th lands on partition i % partitions, so the test spans partitions by design."""
    keys: list[str] = []
    while len(keys) < count:
        key = _unique(prefix)
        if partition_for(key.encode(), partitions) == len(keys) % partitions:
            keys.append(key)
    return keys


def test_per_key_order_survives_the_frontend(fe: Frontend, admin: AdminClient) -> None:
    partitions = len(admin.list_topics(fe.ingress, timeout=10).topics[fe.ingress].partitions)
    assert partitions > 1, "the ingress topic must have several partitions for this test"
    keys = _keys_over_partitions("order", 4, partitions)
    count = 150
    sent: list[Sent] = [
        (k.encode(), as_json(file_uploaded(k, size=seq)), []) for seq in range(count) for k in keys
    ]
    where = produce(fe.bootstrap, fe.ingress, sent)
    ingress_partition = {k: p for (k, _, _), (p, _) in zip(sent, where, strict=True)}
    fe.ready.wait_for(
        lambda rs: sum(r.key in ingress_partition for r in rs) >= len(sent), "every ordered event"
    )
    for key in keys:
        mine = [r for r in fe.ready.records if r.key == key.encode()]
        assert len({r.partition for r in mine}) == 1, "one key, one partition"
        assert mine[0].partition == ingress_partition[key.encode()], "same partition every hop"
        sizes = [_size(r) for r in sorted(mine, key=lambda r: r.offset)]
        assert sizes == list(range(count))
    expected = {k.encode(): partition_for(k.encode(), partitions) for k in keys}
    assert ingress_partition == expected, "the client partitions like Kafka's murmur2"


def test_only_delayed_events_go_to_the_scheduler(fe: Frontend) -> None:
    file_id = _unique("delayed")
    now, later = f"{file_id}-now".encode(), f"{file_id}-later".encode()
    delay: Headers = [(h.DELAY, b"60000")]
    sent: list[Sent] = [
        (later, as_json(file_uploaded(file_id)), delay),
        (now, as_json(file_uploaded(file_id)), []),
    ]
    produce(fe.bootstrap, fe.ingress, sent)
    [delayed] = keyed(fe.accepted, [later], "the delayed event")
    keyed(fe.ready, [now], "the event due now")
    assert int(delayed.header[h.DELIVER_AT]) > int(delayed.header[h.PUBLISHED_AT]) + 59_000
    assert not [r for r in fe.ready.records if r.key == later], "not due: the scheduler has it"
    assert not [r for r in fe.accepted.records if r.key == now], "due now: no scheduler hop"


def _size(r: Record) -> int:
    decoded = wire.decode(r.value, CURRENT)
    assert isinstance(decoded, dict)
    return int(decoded["size"])


def test_http_post_through_the_worker_reaches_ready(fe: Frontend) -> None:
    file_id = _unique("http")
    request = urllib.request.Request(
        f"http://127.0.0.1:{fe.http_port}/v1/events/file.uploaded",
        data=as_json(file_uploaded(file_id)),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 -- local test URL
        assert response.status == 202
        [event_id] = json.loads(response.read())["ids"]
    [r] = keyed(fe.ready, [file_id.encode()], "the HTTP event")
    assert r.header[h.EVENT_ID] == event_id.encode()
    assert r.value == wire.encode(V2, {**file_uploaded(file_id), "sha256": None})


def test_a_record_too_big_to_reject_whole_is_cut_and_the_worker_lives_on(fe: Frontend) -> None:
    """Near the ingress topic's limit, a reject with its headers would not fit the rejected
    topic; before the fix the producer refused it and every restart crashed on it again."""
    topic = fe.names.ingress("user.deleted")
    key = _unique("poison").encode()
    value = b"x" * (MAX_BYTES + HEADROOM - 200)
    good = {"user_id": key.decode() + "-good", "deleted_at": 1, "reason": "ABUSE"}
    produce(fe.bootstrap, topic, [(key, value, []), (None, as_json(good), [])])
    [rejected] = keyed(fe.rejected, [key], "the cut reject")
    keyed(fe.ready, [f"{key.decode()}-good".encode()], "the event after it")
    assert fe.worker.proc.poll() is None, "the worker is still running"
    assert rejected.header[h.REJECT_REASON] == b"oversize"
    assert rejected.header[h.REJECT_TRUNCATED] == str(len(value)).encode()
    assert value.startswith(rejected.value)


def _metric(port: int, line_prefix: str) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=20) as response:
        text = response.read().decode()
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(line_prefix)]
    assert len(values) <= 1, f"{line_prefix} once in /metrics"
    return values[0] if values else 0.0  # a labelled counter appears on its first increment


def test_metrics_count_accepted_and_rejected_by_reason(fe: Frontend) -> None:
    accepted = 'msm_frontend_accepted_total{event_type="file.uploaded"}'
    rejected = 'msm_frontend_rejected_total{event_type="file.uploaded",reason="invalid_json"}'
    file_id = _unique("metrics")
    produce(fe.bootstrap, fe.ingress, [(f"{file_id}-bad".encode(), b"{nope", [])])
    keyed(fe.rejected, [f"{file_id}-bad".encode()], "the bad record")
    before_accepted = _metric(fe.http_port, accepted)
    before_rejected = _metric(fe.http_port, rejected)
    bad_keys = [f"{file_id}-bad{i}".encode() for i in range(3)]
    good_ids = [f"{file_id}-{i}" for i in range(2)]
    bad: list[Sent] = [(k, b"{nope", []) for k in bad_keys]
    good: list[Sent] = [(i.encode(), as_json(file_uploaded(i)), []) for i in good_ids]
    produce(fe.bootstrap, fe.ingress, [*bad, *good])
    keyed(fe.ready, [i.encode() for i in good_ids], "the good events")
    keyed(fe.rejected, bad_keys, "the bad records")
    assert _metric(fe.http_port, accepted) == before_accepted + 2
    assert _metric(fe.http_port, rejected) == before_rejected + 3
