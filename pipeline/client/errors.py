"""Errors of the publishing client.

An invalid payload raises :class:`pipeline.avro.records.RecordError` (every bad field named);
what Kafka refuses raises :class:`PublishError`, retriable when Kafka says the same send may
succeed later (a broker that is down, a leader election), not when it never will (too large).
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError

from pipeline.errors import ConfigError, MSMError


class ClientError(MSMError):
    """Base of the client's own errors."""


class UnknownEventError(ClientError, ConfigError):
    """The event type is not declared in the topology; the message lists the ones that are."""

    def __init__(self, event_type: str, known: Sequence[str]) -> None:
        self.event_type = event_type
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown event type {event_type!r}; the topology declares: {listed}")


class PublishArgumentError(ClientError, ConfigError):
    """A publish call's own arguments are wrong (both delay and deliver_at, a reserved header)."""


class PublishError(ClientError):
    """Kafka did not acknowledge an event; ``event_ids`` are the ones not acknowledged."""

    def __init__(self, message: str, *, retriable: bool, event_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.event_ids = tuple(event_ids)


# Local errors librdkafka does not flag retriable although the same send may well succeed later.
_TRANSIENT = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def _retriable(err: KafkaError) -> bool:
    return not err.fatal() and (err.retriable() or err.code() in _TRANSIENT)


def from_kafka(failures: Sequence[tuple[str, KafkaError]], total: int = 1) -> PublishError:
    """One PublishError for the events Kafka refused; retriable only if every refusal is."""
    event_id, first = failures[0]
    scope = f"{len(failures)} of {total} events" if total > 1 else f"event {event_id}"
    return PublishError(
        f"Kafka did not acknowledge {scope}: {first.str()} ({first.name()})",
        retriable=all(_retriable(err) for _, err in failures),
        event_ids=[event_id for event_id, _ in failures],
    )
