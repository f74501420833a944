"""Wiring a :class:`~pipeline.gate.pump.Pump` to a Faust app: its agent, dispatch task and
rebalance hooks. The agent only hands records over, so it never blocks the shared consumer."""

from __future__ import annotations

import asyncio
import functools
import weakref
from dataclasses import dataclass, field
from typing import Any

from pipeline import headers as h
from pipeline.agents.base import raw_topic
from pipeline.gate.pump import TP, Pump, Task
from pipeline.worker.fatal import fatal
from pipeline.worker.pause import ClientFlow
from pipeline.worker.take import take_ready

BATCH_MAX = 500
LIVELOCK_PATIENCE_S = 24 * 3600.0
# At a clean shutdown, tasks in flight get this long to finish and be acked (faust commits the
# acks as its consumer stops) before they are cancelled and left to the next owner.
SHUTDOWN_GRACE_S = 5.0


@dataclass
class _AppPumps:
    flow: ClientFlow
    pumps: dict[str, Pump] = field(default_factory=dict)  # by topic


_APPS: weakref.WeakKeyDictionary[Any, _AppPumps] = weakref.WeakKeyDictionary()


def attach_pump(app: Any, topic: str, pump: Pump, name: str) -> None:
    """Feed ``topic``'s records to ``pump`` and run its dispatch loop in ``app``'s worker."""
    pumps = _APPS.get(app)
    if pumps is None:
        pumps = _APPS[app] = _AppPumps(ClientFlow(app))
        _connect(app, pumps)
        # What faust takes from the client per poll is what still arrives after a pause.
        app.conf.broker_max_poll_records = BATCH_MAX
        # A held subscriber (unhealthy target) or an ordered one retrying in place commits
        # nothing for as long as that lasts: it is waiting, not stuck, for faust's livelock
        # detector (300 s by default, then an error every 1.25 s).
        app.conf.stream_processing_timeout = LIVELOCK_PATIENCE_S
        app.conf.broker_commit_livelock_soft_timeout = LIVELOCK_PATIENCE_S
    pumps.pumps[topic] = pump
    flow = pumps.flow

    async def set_paused(tp: TP, paused: bool) -> None:
        await flow.set_paused(tp, paused=paused)

    pump.bind(set_paused)

    async def feed(stream: Any) -> None:
        async for events in take_ready(stream, BATCH_MAX):
            # Left over from a revoked partition or an earlier generation: its owner re-reads it.
            assigned = app.consumer.assignment()
            generation = app.consumer_generation_id
            await pump.intake(
                (_task(e), functools.partial(stream.ack, e))
                for e in events
                if e.message.tp in assigned and e.message.generation_id in (None, generation)
            )

    async def dispatch(_app: Any) -> None:
        await pump.run()

    app.agent(raw_topic(app, topic), name=name)(fatal(app, name)(feed))
    app.task(fatal(app, f"{name} dispatch")(dispatch))


def _connect(app: Any, pumps: _AppPumps) -> None:
    async def on_revoked(_sender: Any, revoked: set[Any], **_: Any) -> None:
        for topic, pump in pumps.pumps.items():
            pump.revoke((tp.topic, tp.partition) for tp in revoked if tp.topic == topic)

    async def on_assigned(_sender: Any, assigned: set[Any], **_: Any) -> None:
        await pumps.flow.on_assigned()  # nothing stays paused from before the rebalance ...
        owned = app.consumer.assignment()
        for topic, pump in pumps.pumps.items():
            mine = [(tp.topic, tp.partition) for tp in owned if tp.topic == topic]
            pump.unfence(mine)
            pump.set_owned(len(mine))
            await pump.repause()  # ... but what a pump paused since then stays paused

    async def on_shutdown(_sender: Any, **_: Any) -> None:
        await asyncio.gather(*(p.stop(SHUTDOWN_GRACE_S) for p in pumps.pumps.values()))

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    app.on_before_shutdown.connect(on_shutdown)


def _task(event: Any) -> Task:
    msg = event.message
    header_list = h.from_consumed(msg.headers)
    return Task(
        tp=(msg.topic, msg.partition),
        offset=msg.offset,
        key=msg.key,
        value=msg.value or b"",
        headers=dict(header_list),
        header_list=header_list,
        timestamp_ms=round(msg.timestamp * 1000) if msg.timestamp is not None else 0,
    )
