"""Turn a publish call into the Kafka record MSM's ingress expects; shared by both publishers.

Validation happens here, in the publisher's process, so a bad payload fails at the call site
naming the field, before anything reaches Kafka. Each event's schema is loaded and compiled on
first use and kept, so a publish costs one walk of the payload and one Avro write.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.records import RecordConverter
from pipeline.avro.schemas import LoadedSchema, load_schema
from pipeline.client.errors import PublishArgumentError, PublishError, UnknownEventError
from pipeline.client.ids import new_event_id
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, max_record_bytes, min_record_bytes

HeaderValue = str | bytes
_RESERVED_PREFIX = "msm."


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One encoded event, ready for ``Producer.produce``."""

    event_id: str
    event_type: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]  # the type Producer.produce takes


@dataclass(frozen=True, slots=True)
class EventCodec:
    """What publishing one event type needs, loaded and compiled once."""

    schema: LoadedSchema
    converter: RecordConverter
    topic: str
    key_field: str | None
    max_bytes: int


def producer_config(
    topology: Topology, overrides: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Durable by default (acks=all, idempotent), then the topology's extras, then overrides.

    No compression by default: MSM's own consumers are aiokafka, which can only read lz4, zstd
    or snappy with the optional cramjam package; set ``kafka.client.compression.type`` to opt in.
    """
    config: dict[str, object] = {
        "bootstrap.servers": topology.kafka.bootstrap_servers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        # Java's and aiokafka's partitioner (murmur2), so every client and every MSM hop maps
        # one key to one partition; librdkafka's own default (crc32) would disagree.
        "partitioner": "murmur2_random",
        # librdkafka's default is 5 minutes; a blocked publish should fail sooner than that.
        "delivery.timeout.ms": 30_000,
        # librdkafka refuses messages over ~1 MB by default; allow the largest declared event.
        "message.max.bytes": max_record_bytes(topology.events.values()),
        # A batch may not exceed the smallest ingress topic's max.message.bytes: the broker
        # refuses the whole batch and librdkafka never splits a refused batch.
        "batch.size": min_record_bytes(topology.events.values()),
        # Connection failures surface as delivery errors; do not also print them to stderr.
        "log_level": 0,
    }
    config.update(topology.kafka.client)
    config.update(overrides or {})
    return config


def deliver_at_ms(
    delay: timedelta | None, deliver_at: datetime | None, now: datetime | None = None
) -> int | None:
    """The msm.deliver_at header value: milliseconds since the epoch, or None for "now".

    A naive ``deliver_at`` is read as UTC, as everywhere else in MSM.
    """
    if delay is not None and deliver_at is not None:
        raise PublishArgumentError("give either delay or deliver_at, not both")
    if delay is not None:
        if delay < timedelta(0):
            raise PublishArgumentError(f"delay must not be negative, got {delay}")
        if not delay:
            return None
        deliver_at = (now or datetime.now(UTC)) + delay
    if deliver_at is None:
        return None
    if deliver_at.tzinfo is None:
        deliver_at = deliver_at.replace(tzinfo=UTC)
    return int(deliver_at.timestamp() * 1000)


def key_bytes(value: object) -> bytes | None:
    """A payload field's value as a Kafka key; None (a null field) means "no key"."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        return repr(value).encode()
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


class EventEncoder:
    """Validates and encodes events of one topology; thread-safe."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.topics = TopicNames(topology.namespace)
        self._codecs: dict[str, EventCodec] = {}
        self._lock = threading.Lock()

    @property
    def event_types(self) -> list[str]:
        return sorted(self.topology.events)

    def codec(self, event_type: str) -> EventCodec:
        codec = self._codecs.get(event_type)
        if codec is not None:
            return codec
        spec = self.topology.events.get(event_type)
        if spec is None:
            raise UnknownEventError(event_type, list(self.topology.events))
        with self._lock:
            codec = self._codecs.get(event_type)
            if codec is None:
                schema = load_schema(spec.schema_path)
                converter = RecordConverter(schema, subject=f"{event_type} payload")
                codec = EventCodec(
                    schema, converter, self.topics.ingress(event_type), spec.key, spec.max_bytes
                )
                self._codecs[event_type] = codec
        return codec

    def encode(
        self,
        event_type: str,
        payload: object,
        *,
        key: str | bytes | None = None,
        event_id: str | None = None,
        delay: timedelta | None = None,
        deliver_at: datetime | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
        traceparent: str | None = None,
    ) -> OutgoingEvent:
        """Validate (RecordError names every bad field) and encode one event."""
        codec = self.codec(event_type)
        when = deliver_at_ms(delay, deliver_at)
        record = codec.converter.convert(payload)
        if event_id is None:
            event_id = new_event_id()
        elif not event_id or not isinstance(event_id, str):
            raise PublishArgumentError(f"event_id must be a non-empty string, got {event_id!r}")
        value = wire.encode(codec.schema, record)
        if len(value) > codec.max_bytes:
            raise PublishError(
                f"{event_type} event {event_id} is {len(value)} bytes, over the event's "
                f"max_bytes of {codec.max_bytes}",
                retriable=False,
                event_ids=[event_id],
            )
        if isinstance(key, str):
            key = key.encode()
        if key is None and codec.key_field is not None:
            key = key_bytes(record.get(codec.key_field))
        return OutgoingEvent(
            event_id=event_id,
            event_type=event_type,
            topic=codec.topic,
            key=key if key is not None else event_id.encode(),
            value=value,
            headers=build_headers(
                event_id, event_type, codec.schema, when, traceparent, headers or {}
            ),
        )


def build_headers(
    event_id: str,
    event_type: str,
    schema: LoadedSchema,
    deliver_at: int | None,
    traceparent: str | None,
    extra: Mapping[str, HeaderValue],
) -> list[tuple[str, str | bytes | None]]:
    """MSM's ingress headers first, then the caller's own (which may not use ``msm.*``, except
    ``msm.priority``: the lane, high, normal or low, of the event's tasks)."""
    out: list[tuple[str, str | bytes | None]] = [
        (h.EVENT_ID, event_id.encode()),
        (h.EVENT_TYPE, event_type.encode()),
        (h.CONTENT_TYPE, wire.CONTENT_TYPE.encode()),
        (h.SCHEMA_FINGERPRINT, schema.fingerprint_hex.encode()),
    ]
    if deliver_at is not None:
        out.append((h.DELIVER_AT, str(deliver_at).encode()))
    if traceparent is not None:
        out.append((h.TRACEPARENT, traceparent.encode()))
    for name, value in extra.items():
        if name == h.PRIORITY:
            lane = value.decode() if isinstance(value, bytes) else value
            if lane not in ("high", "normal", "low"):
                raise PublishArgumentError(f"{h.PRIORITY} {lane!r}: expected high, normal or low")
            out.append((name, lane.encode()))
            continue
        clash = name.startswith(_RESERVED_PREFIX) or name == h.CONTENT_TYPE
        if clash or (name == h.TRACEPARENT and traceparent is not None):
            raise PublishArgumentError(f"header {name!r} is set by MSM and cannot be given")
        out.append((name, value.encode() if isinstance(value, str) else value))
    return out
