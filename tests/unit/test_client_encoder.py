"""EventEncoder: what a publish call puts on Kafka (topic, key, headers, value), without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.records import RecordError
from pipeline.avro.schemas import EventSchemas
from pipeline.client.encoder import EventEncoder, deliver_at_ms, key_bytes, producer_config
from pipeline.client.errors import PublishArgumentError, PublishError, UnknownEventError
from pipeline.errors import ConfigError
from pipeline.topology import Topology
from tests.publish_support import SCHEMAS, file_uploaded, load


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    return load(tmp_path, "enc")


@pytest.fixture
def encoder(topology: Topology) -> EventEncoder:
    return EventEncoder(topology)


def test_topic_value_and_default_headers(encoder: EventEncoder) -> None:
    event = encoder.encode("file.uploaded", file_uploaded(file_id="f1"))
    assert event.topic == "enc.in.file.uploaded"
    schemas = EventSchemas.load(SCHEMAS / "file_uploaded.v2.avsc")
    decoded = wire.decode(event.value, schemas)
    assert isinstance(decoded, dict)
    assert decoded["file_id"] == "f1"
    assert event.headers == [
        (h.EVENT_ID, event.event_id.encode()),
        (h.EVENT_TYPE, b"file.uploaded"),
        (h.CONTENT_TYPE, b"avro/binary"),
        (h.SCHEMA_FINGERPRINT, schemas.current.fingerprint_hex.encode()),
    ]


def test_key_comes_from_the_key_field_then_explicit_then_event_id(encoder: EventEncoder) -> None:
    assert encoder.encode("file.uploaded", file_uploaded(file_id="f7")).key == b"f7"
    assert encoder.encode("file.uploaded", file_uploaded(), key="k").key == b"k"
    assert encoder.encode("file.uploaded", file_uploaded(), key=b"\x00").key == b"\x00"
    user = {"user_id": "u", "deleted_at": 0, "reason": "ABUSE"}
    event = encoder.encode("user.deleted", user)  # no key field in the topology
    assert event.key == event.event_id.encode()


def test_given_event_id_is_used(encoder: EventEncoder) -> None:
    event = encoder.encode("file.uploaded", file_uploaded(), event_id="order-42")
    assert event.event_id == "order-42"
    assert (h.EVENT_ID, b"order-42") in event.headers
    with pytest.raises(PublishArgumentError):
        encoder.encode("file.uploaded", file_uploaded(), event_id="")


def test_delay_and_deliver_at_become_the_deliver_at_header(encoder: EventEncoder) -> None:
    before = datetime.now(UTC)
    event = encoder.encode("file.uploaded", file_uploaded(), delay=timedelta(seconds=30))
    stamped = dict(event.headers)[h.DELIVER_AT]
    assert isinstance(stamped, bytes)
    expected_ms = (before + timedelta(seconds=30)).timestamp() * 1000
    assert expected_ms - 1 <= int(stamped) <= expected_ms + 5_000
    at = datetime(2030, 1, 1, tzinfo=UTC)
    event = encoder.encode("file.uploaded", file_uploaded(), deliver_at=at)
    assert dict(event.headers)[h.DELIVER_AT] == b"1893456000000"
    immediate = encoder.encode("file.uploaded", file_uploaded(), delay=timedelta(0))
    assert h.DELIVER_AT not in dict(immediate.headers)


def test_deliver_at_rules() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert deliver_at_ms(None, None) is None
    assert deliver_at_ms(timedelta(seconds=1), None, now) == 1893456001000
    assert deliver_at_ms(None, datetime(2030, 1, 1)) == 1893456000000  # naive is UTC
    with pytest.raises(PublishArgumentError, match="not both"):
        deliver_at_ms(timedelta(seconds=1), now)
    with pytest.raises(PublishArgumentError, match="negative"):
        deliver_at_ms(timedelta(seconds=-1), None)


def test_traceparent_and_custom_headers_pass_through(encoder: EventEncoder) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = encoder.encode(
        "file.uploaded", file_uploaded(), traceparent=trace, headers={"x-tenant": "acme"}
    )
    assert (h.TRACEPARENT, trace.encode()) in event.headers
    assert event.headers[-1] == ("x-tenant", b"acme")
    own = encoder.encode("file.uploaded", file_uploaded(), headers={h.TRACEPARENT: trace})
    assert (h.TRACEPARENT, trace.encode()) in own.headers


@pytest.mark.parametrize("name", [h.EVENT_ID, "msm.anything", h.CONTENT_TYPE])
def test_reserved_headers_are_refused(encoder: EventEncoder, name: str) -> None:
    with pytest.raises(PublishArgumentError, match="set by MSM"):
        encoder.encode("file.uploaded", file_uploaded(), headers={name: "x"})


def test_unknown_event_lists_the_known_ones(encoder: EventEncoder) -> None:
    with pytest.raises(UnknownEventError) as caught:
        encoder.encode("file.deleted", {})
    assert isinstance(caught.value, ConfigError)
    assert "'file.deleted'" in str(caught.value)
    assert "file.uploaded, payment.captured, user.deleted" in str(caught.value)


def test_invalid_payload_names_the_event_and_every_field(encoder: EventEncoder) -> None:
    with pytest.raises(RecordError) as caught:
        encoder.encode("file.uploaded", file_uploaded(size="big", bogus=1))
    assert caught.value.fields == ["size", "bogus"]
    assert str(caught.value).startswith("invalid file.uploaded payload: size:")


def test_payload_over_max_bytes_is_refused_before_kafka(encoder: EventEncoder) -> None:
    with pytest.raises(PublishError) as caught:
        encoder.encode("file.uploaded", file_uploaded(path="x" * 3000))  # max_bytes: 2048
    assert not caught.value.retriable
    assert "max_bytes" in str(caught.value)


def test_key_bytes_of_field_values() -> None:
    assert key_bytes("a") == b"a"
    assert key_bytes(42) == b"42"
    assert key_bytes(True) == b"true"
    assert key_bytes(None) is None
    assert key_bytes({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_producer_config_is_durable_and_takes_topology_extras(tmp_path: Path) -> None:
    topology = load(tmp_path, "cfg", bootstrap="broker:1234")
    config = producer_config(topology)
    assert config["bootstrap.servers"] == "broker:1234"
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    extra = topology.model_copy(
        update={"kafka": topology.kafka.model_copy(update={"client": {"linger.ms": "20"}})}
    )
    assert producer_config(extra)["linger.ms"] == "20"
    assert producer_config(extra, {"linger.ms": 0})["linger.ms"] == 0


def test_a_priority_header_is_the_one_msm_header_a_publisher_sets(encoder: EventEncoder) -> None:
    event = encoder.encode("file.uploaded", file_uploaded(), headers={h.PRIORITY: "low"})
    assert (h.PRIORITY, b"low") in event.headers
    with pytest.raises(PublishArgumentError, match="expected high, normal or low"):
        encoder.encode("file.uploaded", file_uploaded(), headers={h.PRIORITY: "urgent"})
