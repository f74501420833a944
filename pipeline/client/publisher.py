"""The synchronous publisher: validate, encode and send events to their ingress topics.

``publish`` blocks until Kafka acknowledged the event (acks=all, idempotent producer), so a
returned id is durable; ``wait=False`` trades that for throughput and reports failures at
``flush``. ``publish_many`` sends a batch and waits once for all of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, Message, Producer

from pipeline.avro.records import RecordError
from pipeline.client.encoder import EventEncoder, HeaderValue, OutgoingEvent, producer_config
from pipeline.client.errors import PublishError, from_kafka
from pipeline.topology import Topology

_POLL_S = 0.05


class _Acks:
    """Delivery reports for one call (or, uncounted, for every unwaited send).

    Callbacks run on whichever thread polls the producer, hence the lock.
    """

    def __init__(self, expected: int = 0) -> None:
        self.pending = expected
        self.counted = expected > 0
        self.failures: list[tuple[str, KafkaError]] = []
        self._lock = threading.Lock()

    def callback(self, event_id: str) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            with self._lock:
                if self.counted:
                    self.pending -= 1
                if err is not None:
                    self.failures.append((event_id, err))

        return delivered


def send(producer: Producer, event: OutgoingEvent, on_delivery: Callable[..., None]) -> None:
    """Produce, waiting for room while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(
                event.topic,
                value=event.value,
                key=event.key,
                headers=event.headers,
                on_delivery=on_delivery,
            )
            return
        except BufferError:
            producer.poll(_POLL_S)


class Publisher:
    """Publishes events declared in a topology; thread-safe, one Kafka producer per instance."""

    def __init__(self, topology: Topology, *, config: Mapping[str, object] | None = None) -> None:
        self.topology = topology
        self.encoder = EventEncoder(topology)
        self._producer = Producer(producer_config(topology, config))
        self._unwaited = _Acks()

    @classmethod
    def from_topology_file(
        cls, path: str | Path, *, config: Mapping[str, object] | None = None
    ) -> Publisher:
        from pipeline.topology import load_topology

        return cls(load_topology(path), config=config)

    def publish(
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
        wait: bool = True,
    ) -> str:
        """Publish one event and return its id; with ``wait``, only once Kafka acknowledged it.

        Raises RecordError (every invalid field), UnknownEventError, PublishArgumentError, or
        PublishError when Kafka refuses the event (``retriable`` says whether to try again).
        """
        event = self.encoder.encode(
            event_type,
            payload,
            key=key,
            event_id=event_id,
            delay=delay,
            deliver_at=deliver_at,
            headers=headers,
            traceparent=traceparent,
        )
        if not wait:
            send(self._producer, event, self._unwaited.callback(event.event_id))
            self._producer.poll(0)
            return event.event_id
        acks = _Acks(1)
        send(self._producer, event, acks.callback(event.event_id))
        self._wait(acks, 1)
        return event.event_id

    def publish_many(
        self,
        event_type: str,
        payloads: Iterable[object],
        *,
        key: str | bytes | None = None,
        delay: timedelta | None = None,
        deliver_at: datetime | None = None,
        headers: Mapping[str, HeaderValue] | None = None,
        traceparent: str | None = None,
    ) -> list[str]:
        """Validate every payload first (nothing is sent if one is invalid), send all, wait once.

        Returns the ids in payload order. A RecordError's subject names the payload's index.
        """
        events = encode_all(
            self.encoder, event_type, payloads, key, delay, deliver_at, headers, traceparent
        )
        return self.publish_encoded(events)

    def publish_encoded(self, events: Sequence[OutgoingEvent]) -> list[str]:
        """Send events made by ``self.encoder`` and wait once for all their acks."""
        acks = _Acks(len(events))
        for event in events:
            send(self._producer, event, acks.callback(event.event_id))
        self._wait(acks, len(events))
        return [e.event_id for e in events]

    def _wait(self, acks: _Acks, total: int) -> None:
        while acks.pending > 0:
            self._producer.poll(_POLL_S)
        if acks.failures:
            raise from_kafka(acks.failures, total)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every event sent so far; raise for un-waited events Kafka refused."""
        remaining = self._producer.flush(timeout_s)
        failures, self._unwaited.failures = self._unwaited.failures, []
        if failures:
            raise from_kafka(failures, len(failures))
        if remaining:
            raise PublishError(
                f"{remaining} events not acknowledged within {timeout_s} s", retriable=True
            )

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def encode_all(
    encoder: EventEncoder,
    event_type: str,
    payloads: Iterable[object],
    key: str | bytes | None,
    delay: timedelta | None,
    deliver_at: datetime | None,
    headers: Mapping[str, HeaderValue] | None,
    traceparent: str | None,
) -> list[OutgoingEvent]:
    events = []
    for index, payload in enumerate(payloads):
        try:
            events.append(
                encoder.encode(
                    event_type,
                    payload,
                    key=key,
                    delay=delay,
                    deliver_at=deliver_at,
                    headers=headers,
                    traceparent=traceparent,
                )
            )
        except RecordError as exc:
            raise RecordError(exc.errors, f"{event_type} payload [{index}]") from None
    return events
