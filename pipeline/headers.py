"""Kafka header names MSM routes on, shared by every layer.

After ingress the payload bytes travel untouched; everything a later hop needs to route,
schedule or account for an event travels in these headers, so no hop re-parses the payload.
Values are ASCII: ids and names as text, instants as integer milliseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EVENT_ID = "msm.id"
EVENT_TYPE = "msm.type"
SCHEMA_FINGERPRINT = "msm.schema"  # hex CRC-64-AVRO of the writer schema's canonical form
KEY = "msm.key"
PUBLISHED_AT = "msm.published_at"  # ms since epoch, stamped by the frontend
DELIVER_AT = "msm.deliver_at"  # ms since epoch; absent means now
DELAY = "msm.delay_ms"  # accepted at ingress only; the frontend turns it into DELIVER_AT
# When a record was written to its delay tier: its due time is max(record timestamp, this) +
# tier, so a broker or producer clock that runs behind cannot make it early or spin.
TIERED_AT = "msm.tiered_at"
ATTEMPT = "msm.attempt"
SUBSCRIBER = "msm.subscriber"
PRIORITY = "msm.priority"
ONLY = "msm.only"  # deliver to this one subscriber (a CDC snapshot for a new subscriber)
TRACEPARENT = "traceparent"  # W3C trace context
CONTENT_TYPE = "content-type"  # ingress only: application/json or avro/binary (single object)

# Tasks (one event for one subscriber), from flow control on
TARGET = "msm.target"  # a delayed record goes to this topic when due, not to ready (retries)
ERRORS = "msm.errors"  # the task's failed attempts so far: an ErrorChain as JSON
FIRST_ATTEMPT_AT = "msm.first_attempt_at"  # ms since epoch of the task's first dispatch
OUTCOME = "msm.outcome"  # on outcomes: retriable or non_retriable (delivery_policy.Outcome)
RETRY_AFTER_MS = "msm.retry_after_ms"  # the least wait a failed attempt asked for
HANDLER_VERSION = "msm.handler"  # "stable" or "canary": which handler ran the attempt
DLQ_REASON = "msm.dlq.reason"  # non_retriable, exhausted or dropped_by_operator
DLQ_AT = "msm.dlq.at"  # ms since epoch
REDRIVEN_FROM = "msm.redriven_from"  # "<topic>:<partition>:<offset>" of the dead letter

# Rejected-topic headers
REJECT_REASON = "msm.reject.reason"  # a stable code, e.g. "unknown_fingerprint"
REJECT_MESSAGE = "msm.reject.message"
REJECT_FIELD = "msm.reject.field"
REJECT_TRUNCATED = "msm.reject.truncated"  # the original value's length, when cut to fit
REJECT_HEADERS_DROPPED = "msm.reject.headers_dropped"  # original headers left out
SOURCE_TOPIC = "msm.source.topic"
SOURCE_PARTITION = "msm.source.partition"
SOURCE_OFFSET = "msm.source.offset"

HeaderList = list[tuple[str, bytes]]


def from_consumed(
    raw: Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]] | None,
) -> HeaderList:
    """A consumed record's headers as a list: aiokafka gives (name, value) pairs, faust
    sometimes a mapping; valueless headers are dropped."""
    if not raw:
        return []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return [(k, v) for k, v in pairs if v is not None]


def key_text(key: bytes) -> str | None:
    """A Kafka key as the ``msm.key`` header: UTF-8 without control characters, else None."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def to_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    """Kafka headers as a dict; the last value of a repeated header wins."""
    return {k: v for k, v in (headers or ()) if v is not None}


def encode(values: Mapping[str, str | int]) -> HeaderList:
    return [(k, str(v).encode()) for k, v in values.items()]


def get_str(headers: Mapping[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def get_int(headers: Mapping[str, bytes], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
