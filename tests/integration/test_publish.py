"""Publishing against the real broker: what lands on the ingress topic, acks, and `msm produce`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.records import RecordError
from pipeline.avro.schemas import EventSchemas
from pipeline.client import AsyncPublisher, Publisher, PublishError
from pipeline.topology import Topology, load_topology
from tests.publish_support import SCHEMAS, consume, file_uploaded, ingress_topics, write_topology

MSM = Path(sys.executable).parent / "msm"
FILE_SCHEMAS = EventSchemas.load(
    SCHEMAS / "file_uploaded.v2.avsc", [SCHEMAS / "file_uploaded.v1.avsc"]
)


@dataclass(frozen=True)
class Env:
    topology: Topology
    path: Path
    topics: dict[str, str]
    bootstrap: str


@pytest.fixture
def env(
    tmp_path: Path, admin: AdminClient, unique_name: Callable[[str], str], kafka_bootstrap: str
) -> Iterator[Env]:
    """Ingress topics of a fresh namespace; payment.captured's refuses records over 100 bytes."""
    path = write_topology(tmp_path, unique_name("pub"), kafka_bootstrap)
    topology = load_topology(path)
    small = {"payment.captured": {"max.message.bytes": "100"}}
    with ingress_topics(admin, topology, small) as topics:
        yield Env(topology, path, topics, kafka_bootstrap)


PAYMENT = {
    "payment_id": "p-1",
    "order_id": "o-1",
    "amount_cents": 100,
    "currency": "EUR",
    "customer_email": "a@example.com",
}


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> int:
    """How many records the log holds (from the leaders, so only acknowledged ones)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        return sum(_high(consumer, TopicPartition(topic, p)) for p in range(partitions))
    finally:
        consumer.close()


_SETTLING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART}


def _high(consumer: Consumer, partition: TopicPartition) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException as exc:  # a new topic's leadership may not be known to it yet
            settling = exc.args[0].code() in _SETTLING or exc.args[0].retriable()
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def headers_of(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    assert isinstance(raw, list)
    return {name: value for name, value in raw if isinstance(value, bytes)}


def decoded(message: Message) -> dict[str, object]:
    value = message.value()
    assert isinstance(value, bytes)
    record = wire.decode(value, FILE_SCHEMAS)
    assert isinstance(record, dict)
    return record


def test_publish_waits_for_the_ack_and_writes_the_ingress_record(env: Env) -> None:
    topic = env.topics["file.uploaded"]
    payload = file_uploaded(file_id="f-1")
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with Publisher(env.topology) as publisher:
        event_id = publisher.publish("file.uploaded", payload, traceparent=trace)
        # acknowledged means in the log already: no flush needed to see it
        assert high_watermarks(env.bootstrap, topic, 3) == 1
    [message] = consume(env.bootstrap, topic, 1)
    assert message.key() == b"f-1"
    headers = headers_of(message)
    assert headers[h.EVENT_ID] == event_id.encode()
    assert headers[h.EVENT_TYPE] == b"file.uploaded"
    assert headers[h.CONTENT_TYPE] == b"avro/binary"
    assert headers[h.SCHEMA_FINGERPRINT] == FILE_SCHEMAS.current.fingerprint_hex.encode()
    assert headers[h.TRACEPARENT] == trace.encode()
    assert h.DELIVER_AT not in headers
    record = decoded(message)
    assert record["file_id"] == "f-1"
    assert record["uploaded_at"] == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert uuid.UUID(event_id).version == 7


def test_delay_sets_deliver_at_and_user_events_key_by_id(env: Env) -> None:
    user = {"user_id": "u-1", "deleted_at": "2025-01-01T00:00:00Z", "reason": "ABUSE"}
    with Publisher(env.topology) as publisher:
        before_ms = int(datetime.now(UTC).timestamp() * 1000)
        event_id = publisher.publish("user.deleted", user, delay=timedelta(minutes=5))
    [message] = consume(env.bootstrap, env.topics["user.deleted"], 1)
    assert message.key() == event_id.encode()
    deliver_at = h.get_int(headers_of(message), h.DELIVER_AT)
    assert deliver_at is not None
    assert before_ms + 300_000 <= deliver_at <= before_ms + 310_000


def test_publish_many_returns_ids_in_order_and_keeps_per_key_order(env: Env) -> None:
    payloads = [file_uploaded(file_id="same", size=i) for i in range(50)]
    with Publisher(env.topology) as publisher:
        ids = publisher.publish_many("file.uploaded", payloads)
        assert high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 50
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    messages = consume(env.bootstrap, env.topics["file.uploaded"], 50)
    assert {m.partition() for m in messages} == {messages[0].partition()}
    assert [decoded(m)["size"] for m in messages] == list(range(50))
    assert [headers_of(m)[h.EVENT_ID].decode() for m in messages] == ids


def test_invalid_payload_in_a_batch_sends_nothing(env: Env) -> None:
    payloads = [file_uploaded(), file_uploaded(size="x"), file_uploaded()]
    with Publisher(env.topology) as publisher, pytest.raises(RecordError) as caught:
        publisher.publish_many("file.uploaded", payloads)
    assert caught.value.fields == ["size"]
    assert "payload [1]" in str(caught.value)
    assert high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 0


def test_unwaited_publishes_are_delivered_by_flush(env: Env) -> None:
    publisher = Publisher(env.topology)
    ids = [publisher.publish("file.uploaded", file_uploaded(), wait=False) for _ in range(20)]
    publisher.flush()
    messages = consume(env.bootstrap, env.topics["file.uploaded"], 20)
    assert {headers_of(m)[h.EVENT_ID].decode() for m in messages} == set(ids)


def test_broker_refusal_is_a_non_retriable_publish_error(env: Env) -> None:
    with Publisher(env.topology) as publisher, pytest.raises(PublishError) as caught:
        publisher.publish("payment.captured", PAYMENT)
    assert not caught.value.retriable
    assert len(caught.value.event_ids) == 1


def test_unreachable_broker_is_a_retriable_publish_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MSM_BOOTSTRAP_SERVERS", raising=False)  # the dead address must win
    topology = load_topology(write_topology(tmp_path, "nowhere", bootstrap="localhost:1"))
    publisher = Publisher(topology, config={"delivery.timeout.ms": 1500, "log_level": 0})
    with pytest.raises(PublishError) as caught:
        publisher.publish("file.uploaded", file_uploaded())
    assert caught.value.retriable


async def test_async_publisher(env: Env) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    async with AsyncPublisher(env.topology) as publisher:
        first = await publisher.publish("file.uploaded", file_uploaded(file_id="a-1"))
        many = await publisher.publish_many(
            "file.uploaded", [file_uploaded(file_id="a-2", size=i) for i in range(30)]
        )
        unwaited = await publisher.publish("file.uploaded", file_uploaded(), wait=False)
        assert high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) >= 31
        await publisher.flush()
    ticking.cancel()
    assert ticks > 10  # the loop kept running while acks were awaited
    messages = consume(env.bootstrap, env.topics["file.uploaded"], 32)
    assert {headers_of(m)[h.EVENT_ID].decode() for m in messages} == {first, unwaited, *many}


async def test_async_publisher_refusal(env: Env) -> None:
    async with AsyncPublisher(env.topology) as publisher:
        with pytest.raises(PublishError) as caught:
            await publisher.publish("payment.captured", PAYMENT)
    assert not caught.value.retriable


def msm_produce(env: Env, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "MSM_TOPOLOGY": str(env.path),
        "MSM_BOOTSTRAP_SERVERS": env.bootstrap,
    }
    return subprocess.run(
        [str(MSM), "produce", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_msm_produce_json_file_stdin_count_and_delay(env: Env, tmp_path: Path) -> None:
    one = msm_produce(env, "file.uploaded", json.dumps(file_uploaded(file_id="cli-1")))
    assert one.returncode == 0, one.stderr
    [first_id] = one.stdout.split()
    assert "published 1 file.uploaded events" in one.stderr

    lines = tmp_path / "events.jsonl"
    lines.write_text("\n".join(json.dumps(file_uploaded(file_id=f"cli-{i}")) for i in range(3)))
    many = msm_produce(env, "file.uploaded", f"@{lines}", "--count", "2")
    assert many.returncode == 0, many.stderr
    assert len(many.stdout.split()) == 6

    delayed = msm_produce(
        env, "file.uploaded", "-", "--delay", "30s", stdin=json.dumps(file_uploaded()) + "\n"
    )
    assert delayed.returncode == 0, delayed.stderr
    [delayed_id] = delayed.stdout.split()

    messages = consume(env.bootstrap, env.topics["file.uploaded"], 8)
    by_id = {headers_of(m)[h.EVENT_ID].decode(): m for m in messages}
    assert set(by_id) == {first_id, delayed_id, *many.stdout.split()}
    assert by_id[first_id].key() == b"cli-1"
    assert h.DELIVER_AT in headers_of(by_id[delayed_id])
    file_ids = sorted(str(decoded(by_id[i])["file_id"]) for i in [first_id, *many.stdout.split()])
    assert file_ids == ["cli-0", "cli-0", "cli-1", "cli-1", "cli-1", "cli-2", "cli-2"]


def test_msm_produce_bad_field_exits_1_naming_it(env: Env) -> None:
    result = msm_produce(env, "file.uploaded", json.dumps(file_uploaded(size="big")))
    assert result.returncode == 1
    assert "error: argument: invalid file.uploaded payload: size: wrong type" in result.stderr
    assert result.stdout == ""
    assert high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 0
