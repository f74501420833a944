"""Reading and writing ``<ns>.control`` for ``msm subscriber``: the operator's side.

A change is read-modify-write of one subscriber's whole state: read the topic to its current
end (a snapshot, no group joined), change the state, produce it keyed by the subscriber and
wait for the acknowledgement (acks=all), so when the command returns every worker's follower
can already fetch it. Two operators changing one subscriber at the same instant: the last
write wins whole (there is no compare-and-set on Kafka); fine for a human-driven switch.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
from collections.abc import Callable
from datetime import datetime

from confluent_kafka import Consumer, KafkaException

from pipeline.client.reader import assigning_consumer
from pipeline.ops.control.record import ControlRecordError, ControlState, decode
from pipeline.ops.dlq import UnknownSubscriberError
from pipeline.ops.dlq_read import kafka_error, read_ranges, scan
from pipeline.ops.errors import OpsError, unknown_name
from pipeline.ops.produce import produce_acked
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0


class BadTimeError(OpsError):
    """``--before`` is not a usable cut-off."""


def check_subscriber(topology: Topology, subscriber: str) -> None:
    """Raise, naming the closest known subscriber, unless the topology has ``subscriber``."""
    if subscriber in topology.subscribers:
        return
    raise UnknownSubscriberError(
        unknown_name("subscriber", "subscribers", subscriber, topology.subscribers)
    )


def cutoff_ms(before: datetime, now_ms: int) -> int:
    """``--before`` as epoch ms; a future cut-off would drop events not yet published."""
    ms = int(before.timestamp() * 1000)
    if ms > now_ms:
        raise BadTimeError(f"--before: {before.isoformat()} is in the future")
    return ms


def operator() -> str:
    """Who made a change: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def read_states(topology: Topology, timeout_s: float = READ_TIMEOUT_S) -> dict[str, ControlState]:
    """Every subscriber's latest control record (unreadable ones logged and skipped)."""
    topic = TopicNames(topology.namespace).control
    states: dict[str, ControlState] = {}
    consumer = assigning_consumer(topology.kafka, f"{topology.namespace}.control-cli")
    try:
        _check_topic(consumer, topic, timeout_s)
        ranges = read_ranges(consumer, topic, None, timeout_s)
        for m in scan(consumer, topic, ranges, timeout_s):
            try:
                state = decode(m.key(), m.value())
            except ControlRecordError as exc:
                log.warning("%s[%s]@%s: %s", topic, m.partition(), m.offset(), exc)
                continue
            states[state.subscriber] = state
    finally:
        consumer.close()
    return states


def _check_topic(consumer: Consumer, topic: str, timeout_s: float) -> None:
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise kafka_error(f"reading metadata of {topic}", exc) from None
    if meta is None or meta.error is not None or not meta.partitions:
        raise OpsError(f"control topic {topic} does not exist (run `msm topology apply`)")


def current(topology: Topology, subscriber: str) -> ControlState:
    return read_states(topology).get(subscriber) or ControlState(subscriber=subscriber)


def write_state(topology: Topology, state: ControlState, timeout_s: float = 30.0) -> None:
    """Produce ``state`` and wait until Kafka acknowledged it."""
    topic = TopicNames(topology.namespace).control
    produce_acked(topology, topic, state.subscriber.encode(), state.to_json(), timeout_s)


Change = Callable[[ControlState, str, int], ControlState]


def change(topology: Topology, subscriber: str, how: Change) -> ControlState:
    """Read ``subscriber``'s state, apply ``how(state, by, at_ms)``, write the result whole."""
    check_subscriber(topology, subscriber)
    new = how(current(topology, subscriber), operator(), now_ms())
    write_state(topology, new)
    return new


def pause(topology: Topology, subscriber: str) -> ControlState:
    return change(topology, subscriber, lambda s, by, at: s.pause(by, at))


def resume(topology: Topology, subscriber: str) -> ControlState:
    return change(topology, subscriber, lambda s, by, at: s.resume(by, at))


def drop(topology: Topology, subscriber: str, before: datetime | None) -> ControlState:
    """Drop ``subscriber``'s pending tasks published before ``before`` (None: stop dropping)."""
    check_subscriber(topology, subscriber)
    at = now_ms()
    cut = cutoff_ms(before, at) if before is not None else None
    return change(topology, subscriber, lambda s, by, at_ms: s.drop(cut, by, at_ms))


def show(topology: Topology, subscriber: str | None = None) -> list[ControlState]:
    """The state of ``subscriber`` (or of every subscriber of the topology), by name."""
    if subscriber is not None:
        check_subscriber(topology, subscriber)
    states = read_states(topology)
    names = [subscriber] if subscriber is not None else sorted(topology.subscribers)
    return [states.get(n) or ControlState(subscriber=n) for n in names]
