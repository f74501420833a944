"""What every layer module receives, and the one function it exposes.

Each layer is a module in this package with ``register(app, ctx) -> None`` that declares its
topics and agents on a Faust app built by the worker. Layers never import each other: they talk
through topics (named by :class:`~pipeline.topology.topics.TopicNames`) and the header names in
:mod:`pipeline.headers`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.headers import HeaderList
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class LayerContext:
    """Shared, read-only inputs of every layer, built once per worker process."""

    topology: Topology
    clock_ms: Callable[[], int] = wall_clock_ms
    names: TopicNames = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", TopicNames(self.topology.namespace))


class Register(Protocol):
    def __call__(self, app: Any, ctx: LayerContext) -> None: ...


def raw_topic(app: Any, name: str) -> Any:
    """A topic of raw bytes: payloads travel untouched, keys are bytes."""
    return app.topic(name, value_serializer="raw", key_serializer="raw")


Send = Callable[[str, bytes | None, bytes, HeaderList, int | None], Awaitable[Awaitable[object]]]
"""``await send(topic, key, value, headers, partition)`` queues a record and returns the future
of its acknowledgement, so a batch's sends are queued first and awaited together."""


def producer_send(app: Any) -> Send:
    """Send through the app's producer directly: raw bytes, and none of ``Topic.send``'s
    per-record overhead (see :mod:`pipeline.agents.frontend`)."""

    async def send(
        topic: str, key: bytes | None, value: bytes, headers: HeaderList, partition: int | None
    ) -> Awaitable[object]:
        future: Awaitable[object] = await app.producer.send(
            topic, key, value, partition, None, headers
        )
        return future

    return send
