"""Operator gating in the workers: follow ``<ns>.control`` and apply it to the gates.

``msm subscriber pause|resume|drop`` writes a subscriber's state to the compacted control topic
(:mod:`pipeline.ops.control`). Every delivery and execution worker follows that whole topic with
its own group-less consumer (every worker must see every subscriber's state, so no group shares
it out), from the beginning, with a short fetch wait so a change lands within a second:

* **pause** holds the subscriber's :class:`~pipeline.gate.pump.Pump` (hold :data:`PAUSED`):
  nothing new is dispatched, what is in flight finishes, the backlog waits in Kafka (parked
  records pause their partitions in the client), nothing fails. Both gates are held, delivery's
  on ``sub.<s>`` and execution's on ``exec.<s>``: a handler subscriber's backlog is mostly on
  ``exec.<s>`` already, since delivery hands tasks on as fast as Kafka acknowledges them.
* **drop** dead-letters, with reason ``dropped_by_operator`` and an error-chain entry naming who
  and when, the tasks :func:`~pipeline.ops.control.record.drop_applies` selects, when the gate
  would dispatch them (so a paused subscriber drops at resume, and within its rate limit).
  Delivery drops what waits on ``sub.<s>``, including retries coming back from the delay tiers;
  execution drops what waits on ``exec.<s>``. Tasks already running finish.

Until a starting worker has read the topic to the end offsets it saw at start, every gate is
held (:data:`SYNC`): a restarted worker never delivers a paused subscriber's tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline import headers as h
from pipeline.agents.base import LayerContext
from pipeline.agents.delivery_endpoint import read_chain
from pipeline.agents.delivery_failures import Failed, Failures
from pipeline.agents.delivery_policy import ErrorEntry
from pipeline.gate.pump import Process, Pump, Task
from pipeline.ops.control.record import (
    DROP_REASON,
    ControlRecordError,
    ControlState,
    decode,
    describe,
    drop_applies,
    drop_message,
)
from pipeline.topology.subscribers import SubscriberSpec
from pipeline.worker.fatal import fatal

log = logging.getLogger(__name__)

PAUSED = "operator pause"
SYNC = "control topic not read yet"
FETCH_WAIT_MS = 100  # the broker answers an idle fetch after this: changes land within ~0.1 s
POLL_MS = 1000
METADATA_TRIES = 50

DeadLetter = Callable[[Task, ControlState], Awaitable[None]]


class Gates:
    """One layer's gates in this worker and the control state applied to them."""

    def __init__(self, layer: str) -> None:
        self.layer = layer
        self.pumps: dict[str, Pump] = {}
        self.states: dict[str, ControlState] = {}
        self.synced = False

    def add(self, subscriber: str, pump: Pump) -> None:
        """A subscriber's gate, held until the control topic is read (:meth:`sync`)."""
        self.pumps[subscriber] = pump
        if not self.synced:
            pump.hold(SYNC)

    def apply(self, state: ControlState) -> None:
        """A subscriber's new state (from a record of the control topic)."""
        name = state.subscriber
        old = self.states.get(name) or ControlState(subscriber=name)
        self.states[name] = state
        pump = self.pumps.get(name)
        if pump is None:
            return  # not in this worker's topology: nothing to hold
        if state.paused:
            pump.hold(PAUSED)
        else:
            pump.release(PAUSED)
        if state.paused != old.paused:
            by = f" {state.paused_by}" if state.paused_by else ""
            if state.paused:
                log.warning("%s %s: paused by operator%s", self.layer, name, by)
            else:
                log.warning("%s %s: resumed by operator %s", self.layer, name, state.by)
        if (state.drop_before_ms, state.drop_at_ms) != (old.drop_before_ms, old.drop_at_ms):
            log.warning("%s %s: operator state: %s", self.layer, name, describe(state))

    def sync(self) -> None:
        """The control topic is read up to its end at start: gates may dispatch."""
        if self.synced:
            return
        self.synced = True
        for pump in self.pumps.values():
            pump.release(SYNC)
        paused = sorted(n for n, s in self.states.items() if s.paused and n in self.pumps)
        listed = ", ".join(paused) or "none"
        log.info("%s: control topic read; paused by operator: %s", self.layer, listed)

    def dropping(self, subscriber: str, task: Task) -> ControlState | None:
        """The state that drops ``task``, if one does."""
        state = self.states.get(subscriber)
        if state is not None and drop_applies(state, task.headers, task.timestamp_ms):
            return state
        return None

    def guard(self, subscriber: str, process: Process, dead_letter: DeadLetter) -> Process:
        """``process`` behind the drop rule: a dropped task is dead-lettered instead."""

        async def guarded(task: Task) -> None:
            state = self.dropping(subscriber, task)
            if state is None:
                await process(task)
            else:
                await dead_letter(task, state)

        return guarded


def drop_to_dlq(
    spec: SubscriberSpec, failures: Failures, clock_ms: Callable[[], int]
) -> DeadLetter:
    """Dead-letter a dropped task through delivery's one dead-letter path, returning once the
    dead letter and its task record are on Kafka (so the gate may then ack it)."""

    async def dead_letter(task: Task, state: ControlState) -> None:
        attempt = h.get_int(task.headers, h.ATTEMPT) or 1
        at = datetime.fromtimestamp(clock_ms() / 1000, UTC)
        entry = ErrorEntry(
            attempt=attempt, at=at, error_type=DROP_REASON, message=drop_message(state)
        )
        chain = read_chain(task.header_list, spec.name).add(entry)
        failed = Failed(task.key, task.value, task.header_list, attempt, chain)
        await asyncio.gather(*await failures.dead_letter(spec, failed, DROP_REASON))

    return dead_letter


class Follower:
    """Reads the control topic forever and applies each record to its :class:`Gates`."""

    def __init__(self, bootstrap: str, topic: str, gates: Gates, client_id: str) -> None:
        self.bootstrap, self.topic, self.gates, self.client_id = bootstrap, topic, gates, client_id

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            client_id=self.client_id,
        )
        await consumer.start()
        try:
            tps = await self._partitions(consumer)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                if not self.gates.synced and await _reached(consumer, ends):
                    self.gates.sync()
                batches = await consumer.getmany(timeout_ms=POLL_MS)
                for records in batches.values():
                    for record in records:
                        self._apply(record)
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        consumer.assign([TopicPartition(self.topic, 0)])  # asks the client for its metadata
        for _ in range(METADATA_TRIES):
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            # the client's metadata may predate the topic (created just before the worker
            # started): topics() forces a refresh instead of waiting for the next periodic one
            await consumer.topics()
            await asyncio.sleep(0.2)
        raise RuntimeError(f"control topic {self.topic} not found (run `msm topology apply`)")

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            state = decode(record.key, record.value)
        except ControlRecordError as exc:  # a bad write must not stop every worker
            log.warning("%s[%d]@%d ignored: %s", record.topic, record.partition, record.offset, exc)
            return
        self.gates.apply(state)


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def follow_control(app: Any, ctx: LayerContext, gates: Gates) -> None:
    """Run ``gates``' follower in ``app``'s worker (a crash of it crashes the worker)."""
    kafka = ctx.topology.kafka
    follower = Follower(
        kafka.bootstrap_servers,
        ctx.names.control,
        gates,
        f"{ctx.topology.namespace}.{gates.layer}.control",
    )

    async def follow(_app: Any) -> None:
        await follower.run()

    app.task(fatal(app, f"{gates.layer} control")(follow))
