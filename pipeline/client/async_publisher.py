"""The asyncio publisher: the same API as Publisher, without blocking the event loop.

librdkafka does the network work on its own threads; a small poll thread serves delivery
reports and settles asyncio futures through ``loop.call_soon_threadsafe``, so awaiting an ack
costs the loop nothing. ``produce`` itself only enqueues and is called on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, Message, Producer

from pipeline.client.encoder import EventEncoder, HeaderValue, OutgoingEvent, producer_config
from pipeline.client.errors import PublishError, from_kafka
from pipeline.client.publisher import encode_all
from pipeline.topology import Topology

_POLL_S = 0.05
_FULL_QUEUE_WAIT_S = 0.005


class _Batch:
    """Acks for one call; resolves its future on the loop once every report arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.pending = expected
        self.total = expected
        self.failures: list[tuple[str, KafkaError]] = []
        self._lock = threading.Lock()

    def callback(self, event_id: str) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            with self._lock:
                self.pending -= 1
                if err is not None:
                    self.failures.append((event_id, err))
                if self.pending:
                    return
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                self.loop.call_soon_threadsafe(self._settle)

        return delivered

    def _settle(self) -> None:
        if self.future.done():  # the waiter was cancelled
            return
        if self.failures:
            self.future.set_exception(from_kafka(self.failures, self.total))
        else:
            self.future.set_result(None)


class AsyncPublisher:
    """Publishes events declared in a topology from asyncio code; one producer per instance."""

    def __init__(self, topology: Topology, *, config: Mapping[str, object] | None = None) -> None:
        self.topology = topology
        self.encoder = EventEncoder(topology)
        self._producer = Producer(producer_config(topology, config))
        self._unwaited: list[tuple[str, KafkaError]] = []
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="msm-publisher-poll", daemon=True)
        self._poller.start()

    @classmethod
    def from_topology_file(
        cls, path: str | Path, *, config: Mapping[str, object] | None = None
    ) -> AsyncPublisher:
        from pipeline.topology import load_topology

        return cls(load_topology(path), config=config)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(_POLL_S)

    async def publish(
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
        """Publish one event; with ``wait``, return its id once Kafka acknowledged it."""
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
            await self._send(event, self._record_unwaited(event.event_id))
            return event.event_id
        batch = _Batch(asyncio.get_running_loop(), 1)
        await self._send(event, batch.callback(event.event_id))
        await batch.future
        return event.event_id

    async def publish_many(
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
        """Validate all, send all, await every ack once; ids in payload order."""
        events = encode_all(
            self.encoder, event_type, payloads, key, delay, deliver_at, headers, traceparent
        )
        return await self.publish_encoded(events)

    async def publish_encoded(self, events: Sequence[OutgoingEvent]) -> list[str]:
        """Send events already validated by ``self.encoder``; await every ack once."""
        if not events:
            return []
        batch = _Batch(asyncio.get_running_loop(), len(events))
        for event in events:
            await self._send(event, batch.callback(event.event_id))
        await batch.future
        return [e.event_id for e in events]

    async def _send(
        self, event: OutgoingEvent, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    event.topic,
                    value=event.value,
                    key=event.key,
                    headers=event.headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # librdkafka's queue is full: let the poll thread drain it
                await asyncio.sleep(_FULL_QUEUE_WAIT_S)

    def _record_unwaited(self, event_id: str) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._unwaited.append((event_id, err))  # list.append is atomic

        return delivered

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait (off the loop) for every event sent so far; raise for refused unwaited ones."""
        remaining = await asyncio.to_thread(self._producer.flush, timeout_s)
        failures, self._unwaited = self._unwaited, []
        if failures:
            raise from_kafka(failures, len(failures))
        if remaining:
            raise PublishError(
                f"{remaining} events not acknowledged within {timeout_s} s", retriable=True
            )

    async def close(self, timeout_s: float = 30.0) -> None:
        try:
            await self.flush(timeout_s)
        finally:
            self._stop.set()
            await asyncio.to_thread(self._poller.join)

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
