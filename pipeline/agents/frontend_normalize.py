"""The frontend's pure core: one ingress record in, an accepted or a rejected record out.

Decoding and validation happen here, once; later hops route on headers and pass the payload
bytes through untouched. Accepted payloads are always Avro single-object encoded in the event's
*current* schema, so Avro in an older version and JSON come out byte-identical to a producer
that already wrote the current version. Nothing raises for bad input: every failure is a
:class:`Rejected` with a stable reason code, the readable message, the field path and the
original bytes and headers, so it can be inspected and replayed.

Every record produced must also fit the accepted and rejected topics (``max.message.bytes`` of
the largest event's ``max_bytes`` plus headroom): a record the producer refuses would crash the
worker, and the restarted worker would read the same record and crash again. An ingress record
whose headers leave no room is rejected as ``oversize``; a reject that cannot carry all of its
original bytes keeps a prefix and says so in ``msm.reject.truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pipeline import headers as h
from pipeline import trace
from pipeline.avro import wire
from pipeline.avro.records import RecordConverter, RecordError, compile_record
from pipeline.avro.schemas import EventSchemas
from pipeline.client.encoder import key_bytes
from pipeline.client.ids import new_event_id
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, max_record_bytes

MAX_DELAY_MS = int(timedelta(days=366).total_seconds() * 1000)
_MAX_ID_CHARS = 200
_FRAMING = 1024  # record batch and record framing, with room to spare
RawHeaders = Sequence[tuple[str, bytes | None]]
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Accepted:
    event_type: str
    event_id: str
    key: bytes
    value: bytes
    headers: Headers
    deliver_at_ms: int | None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # stable code: unknown_fingerprint, invalid_json, missing_field, oversize ...
    message: str
    field: str
    key: bytes | None
    value: bytes
    headers: Headers  # the original headers, then the msm.reject.* and msm.source.* ones


_PRIORITIES = (b"high", b"normal", b"low")


class _Rejection(Exception):
    def __init__(self, reason: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field


@dataclass(frozen=True, slots=True)
class _Event:
    name: str
    schemas: EventSchemas
    converter: RecordConverter
    key_field: str | None
    max_bytes: int


class Normalizer:
    """Built once per worker from the topology; ``normalize`` is called per record."""

    def __init__(self, topology: Topology, *, clock_ms: Callable[[], int]) -> None:
        names = TopicNames(topology.namespace)
        self._clock_ms = clock_ms
        # bytes of value and headers per record that accepted and rejected both take
        self.budget = max_record_bytes(topology.events.values()) - _FRAMING
        self._by_topic: dict[str, _Event] = {}
        for name, spec in topology.events.items():
            schemas = EventSchemas.load(spec.schema_path, spec.previous_schemas)
            converter = compile_record(schemas.current, subject=name)
            event = _Event(name, schemas, converter, spec.key, spec.max_bytes)
            self._by_topic[names.ingress(name)] = event

    @property
    def ingress_topics(self) -> list[str]:
        return sorted(self._by_topic)

    def normalize(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: RawHeaders | None,
        partition: int,
        offset: int,
    ) -> Accepted | Rejected:
        raw_headers: Headers = [(k, v) for k, v in headers or () if v is not None]
        try:
            accepted = self._accept(topic, key, value or b"", dict(raw_headers))
            size = _size(accepted.value, accepted.headers)
            if size > self.budget:
                message = f"{size} bytes with headers, over the {self.budget} a record may take"
                raise _Rejection("oversize", message, "headers")
            return accepted
        except _Rejection as r:
            source: dict[str, str | int] = {
                h.REJECT_REASON: r.reason,
                h.REJECT_MESSAGE: r.message[:2000],
                h.REJECT_FIELD: r.field,
                h.SOURCE_TOPIC: topic,
                h.SOURCE_PARTITION: partition,
                h.SOURCE_OFFSET: offset,
            }
            kept, out = self._fit(value or b"", raw_headers, h.encode(source))
            return Rejected(r.reason, r.message, r.field, key, kept, out)

    def _fit(self, value: bytes, original: Headers, ours: Headers) -> tuple[bytes, Headers]:
        """The reject's value and headers, cut only if they would not fit a record."""
        headers = original + ours
        if _size(value, headers) <= self.budget:
            return value, headers
        if _size(b"", headers) + 64 > self.budget:  # the original headers alone are too big
            headers = [*ours, (h.REJECT_HEADERS_DROPPED, str(len(original)).encode())]
        keep = max(0, self.budget - _size(b"", headers) - 64)
        if keep < len(value):
            headers.append((h.REJECT_TRUNCATED, str(len(value)).encode()))
        return value[:keep], headers

    def _accept(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes]
    ) -> Accepted:
        event = self._by_topic.get(topic)
        if event is None:
            raise _Rejection("unknown_topic", f"{topic} is not the ingress topic of any event")
        if len(value) > event.max_bytes:
            raise _Rejection("oversize", f"{len(value)} bytes, over {event.max_bytes} bytes")
        if not value:
            raise _Rejection("empty", "the record has no value")
        payload, encoded = self._decode(event, value, headers)
        now = self._clock_ms()
        event_id = _event_id(headers)
        deliver_at = _deliver_at(headers, now)
        out_key = key or _key_of(event, payload) or event_id.encode()
        out: dict[str, str | int] = {
            h.EVENT_ID: event_id,
            h.EVENT_TYPE: event.name,
            h.SCHEMA_FINGERPRINT: event.schemas.current.fingerprint_hex,
            h.PUBLISHED_AT: now,
        }
        if deliver_at is not None:
            out[h.DELIVER_AT] = deliver_at
        text_key = h.key_text(out_key)
        if text_key is not None:  # for filters (meta.key), handlers (meta.key) and logs
            out[h.KEY] = text_key
        priority = headers.get(h.PRIORITY)
        if priority is not None:  # the publisher's lane for this event's tasks
            if priority not in _PRIORITIES:
                message = f"{priority[:20]!r}, expected one of high, normal, low"
                raise _Rejection("bad_priority", message, h.PRIORITY)
            out[h.PRIORITY] = priority.decode()
        only = headers.get(h.ONLY)
        if only is not None:  # kept as given: flow control routes to a subscriber by that name
            out[h.ONLY] = only.decode("utf-8", "replace")
        passthrough = [
            (k, v)
            for k, v in headers.items()
            if not k.startswith("msm.") and k not in (h.CONTENT_TYPE, h.TRACEPARENT)
        ]
        # Kept when valid, else a new trace starts here: every event can be followed.
        given = headers.get(h.TRACEPARENT)
        if given is None or not trace.valid(given):
            given = trace.new_traceparent().encode()
        passthrough.append((h.TRACEPARENT, given))
        return Accepted(
            event.name, event_id, out_key, encoded, h.encode(out) + passthrough, deliver_at
        )

    def _decode(
        self, event: _Event, value: bytes, headers: Mapping[str, bytes]
    ) -> tuple[Mapping[str, object], bytes]:
        current = event.schemas.current
        if value[:2] == wire.MARKER:
            try:
                record = wire.decode(value, event.schemas)
            except wire.WireError as exc:
                raise _Rejection(exc.code, str(exc)) from None
            assert isinstance(record, Mapping)
            if wire.fingerprint_of(value) == current.fingerprint:
                return record, value  # already current: the bytes travel untouched
            return record, wire.encode(current, record)
        declared = headers.get(h.CONTENT_TYPE, b"").decode("latin-1")
        if declared.startswith("avro"):
            raise _Rejection("bad_marker", "content-type says Avro but the bytes lack C3 01")
        try:
            document = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise _Rejection(
                "invalid_json", f"neither Avro single-object nor JSON: {exc}"
            ) from None
        try:
            record = event.converter.convert(document)
        except RecordError as exc:
            first = exc.errors[0]
            reason = "missing_field" if "missing" in first.message else "schema_mismatch"
            raise _Rejection(reason, str(exc), first.path) from None
        return record, wire.encode(current, record)


def _size(value: bytes, headers: Headers) -> int:
    return len(value) + sum(len(k.encode()) + len(v) for k, v in headers)


def _event_id(headers: Mapping[str, bytes]) -> str:
    given = headers.get(h.EVENT_ID)
    if given:
        text = given.decode("utf-8", "replace")
        if len(text) > _MAX_ID_CHARS or not text.isprintable():
            raise _Rejection("bad_header", "event id is not printable or too long", h.EVENT_ID)
        return text
    return new_event_id()


def _deliver_at(headers: Mapping[str, bytes], now_ms: int) -> int | None:
    at = _int_header(headers, h.DELIVER_AT)
    delay = _int_header(headers, h.DELAY)
    if at is None and delay is not None:
        if delay < 0:
            raise _Rejection("bad_header", "a delay cannot be negative", h.DELAY)
        at = now_ms + delay
    if at is not None and at - now_ms > MAX_DELAY_MS:
        raise _Rejection("bad_header", "deliver_at is more than 366 days ahead", h.DELIVER_AT)
    return at


def _int_header(headers: Mapping[str, bytes], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _Rejection("bad_header", f"{name} must be integer milliseconds", name) from None


def _key_of(event: _Event, payload: Mapping[str, object]) -> bytes | None:
    if event.key_field is None:
        return None
    return key_bytes(payload.get(event.key_field))
