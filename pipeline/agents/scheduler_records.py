"""What the scheduler's parts pass around: consumed records, the produce call, routing header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.agents.base import Send
from pipeline.headers import TIERED_AT, HeaderList

__all__ = ["TIERED_AT", "TP", "Ack", "Incoming", "Send"]

TP = tuple[str, int]  # (topic, partition); faust's TP and aiokafka's TopicPartition are both
Ack = Callable[[], Awaitable[object]]
# (topic, key, value, headers, partition or None for the key's) -> the produce's ack future


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed record, with the callback that acks it to faust."""

    tp: TP
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: HeaderList
    ack: Ack
