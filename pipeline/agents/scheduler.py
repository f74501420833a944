"""Layer 2, the scheduler: ``accepted`` and the delay tiers in, ``ready`` and the tiers out
(and, for retries carrying ``msm.target``, the subscriber queues: see :mod:`scheduler_delay`).

Delayed events travel through tiered delay topics and wait in memory only for their last
moments (:mod:`scheduler_delay`); cron ticks are fired by the one worker that owns
``<ns>.schedules`` (:mod:`scheduler_cron_owner`), and CDC sources read by the one that owns
``<ns>.cdc`` (:mod:`scheduler_cdc`). One agent per input topic, and none of them
ever waits for a due time: a record that is not due is parked in memory and, when far off, its
partition paused in the Kafka client (:mod:`pipeline.worker.pause`). So faust's fetcher never
blocks on a full stream buffer and keeps polling: a long wait cannot get the worker dropped for
exceeding ``max.poll.interval.ms``, nor hold up another topic.

Parked and held records stay unacked, their offsets uncommitted, until forwarded: for as long
as a tier. The scheduler app therefore changes some faust settings:

* ``stream_wait_empty`` off: by default every rebalance and clean shutdown waits for every
  unacked record, up to a whole tier. Revoked partitions are dropped from memory instead and
  re-read by their next owner from the committed offset.
* the livelock detector's patience (``stream_processing_timeout``,
  ``broker_commit_livelock_soft_timeout``, 300 s by default) raised to the longest tier plus
  :data:`LIVELOCK_SLACK`: a partition paused for a 1 h tier is not stuck, and would otherwise be
  reported as an error every 1.25 s.
* ``broker_max_poll_records`` = :data:`BATCH_MAX`: what faust takes from the client per poll is
  what may still arrive after a pause (~500 records per partition, measured, instead of a whole
  1 MB fetch).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from typing import Any

from pipeline import headers as h
from pipeline.agents.base import LayerContext, Send, producer_send, raw_topic
from pipeline.agents.scheduler_cdc import register_cdc
from pipeline.agents.scheduler_cron import CronFirer
from pipeline.agents.scheduler_cron_owner import CronOwner, Records, read_partition
from pipeline.agents.scheduler_delay import DelayRouter
from pipeline.agents.scheduler_records import Incoming
from pipeline.metrics import LayerFlow, process_metrics
from pipeline.topology.durations import format_duration
from pipeline.worker.fatal import fatal
from pipeline.worker.pause import ClientFlow
from pipeline.worker.take import take_ready

log = logging.getLogger(__name__)
BATCH_MAX = 500
_MS = timedelta(milliseconds=1)
LIVELOCK_SLACK = timedelta(minutes=5)  # faust's default livelock patience, beyond a tier


def register(app: Any, ctx: LayerContext) -> None:
    names = ctx.names
    tiers = ctx.topology.delay_tiers
    # See the module docstring; set before anything reads the settings.
    app.conf.stream_wait_empty = False  # create_app's default too; the scheduler depends on it
    patience = (max(tiers) + LIVELOCK_SLACK).total_seconds()
    app.conf.stream_processing_timeout = patience
    app.conf.broker_commit_livelock_soft_timeout = patience
    app.conf.broker_max_poll_records = BATCH_MAX  # bounds what is read ahead of a pause

    send = producer_send(app)
    flow = ClientFlow(app)
    flow_metrics = LayerFlow(process_metrics(), "scheduler")
    router = DelayRouter(
        names,
        tiers,
        send,
        clock_ms=ctx.clock_ms,
        pause=functools.partial(flow.set_paused, paused=True),
        resume=functools.partial(flow.set_paused, paused=False),
        on_ready=_observe_lateness,
        on_forward=lambda headers: flow_metrics.went_out(_event_type(headers)),
        targets=[names.sub(s) for s in ctx.topology.subscribers],  # where retries may go
    )
    _agent(app, router, names.accepted, None, flow_metrics)
    for tier in tiers:
        _agent(app, router, names.delay(tier), tier // _MS)

    async def release(_app: Any) -> None:
        await router.run()

    app.task(fatal(app, "scheduler release")(release))
    owner = _cron(app, ctx, send) if ctx.topology.schedules else None
    cdc = register_cdc(app, ctx, send) if ctx.topology.cdc else None

    async def on_revoked(_sender: Any, revoked: set[Any], **_: Any) -> None:
        router.revoke(revoked)
        if owner is not None:
            await owner.revoked()
        if cdc is not None:
            await cdc.revoked()

    async def on_assigned(_sender: Any, assigned: set[Any], **_: Any) -> None:
        await flow.on_assigned()  # lanes start over: nothing may stay paused from before
        if owner is not None:
            owner.assigned(assigned)
        if cdc is not None:
            cdc.assigned(assigned)

    async def on_shutdown(_sender: Any, **_: Any) -> None:
        if owner is not None:  # before the producer stops: a tick being fired gets recorded
            await owner.revoked()
        if cdc is not None:  # likewise: a round in progress is recorded and acknowledged
            await cdc.revoked()

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    app.on_before_shutdown.connect(on_shutdown)


def _agent(
    app: Any, router: DelayRouter, topic: str, tier_ms: int | None, flow: LayerFlow | None = None
) -> None:
    """``flow`` counts records coming in (on ``accepted`` only: tier hops are not new events)."""
    label = "accepted" if tier_ms is None else f"delay.{format_duration(tier_ms * _MS)}"

    async def schedule(stream: Any) -> None:
        async for events in take_ready(stream, BATCH_MAX):
            # Left over from a revoked partition: its next owner re-reads it.
            assigned = app.consumer.assignment()
            batch = [_incoming(stream, e) for e in events if e.message.tp in assigned]
            if flow is not None:
                for record in batch:
                    flow.came_in(_event_type(record.headers))
            await router.intake(batch, tier_ms)

    name = f"msm.scheduler.{label}"
    app.agent(raw_topic(app, topic), name=name)(fatal(app, f"scheduler {label}")(schedule))


def _incoming(stream: Any, event: Any) -> Incoming:
    msg = event.message
    timestamp_ms = round(msg.timestamp * 1000) if msg.timestamp is not None else 0
    return Incoming(
        tp=msg.tp,
        offset=msg.offset,
        timestamp_ms=timestamp_ms,
        key=msg.key,
        value=msg.value or b"",
        headers=h.from_consumed(msg.headers),
        ack=functools.partial(stream.ack, event),
    )


def _cron(app: Any, ctx: LayerContext, send: Send) -> CronOwner:
    topic = ctx.names.schedules
    firer = CronFirer(ctx.topology, send, clock_ms=ctx.clock_ms)

    async def read() -> Records:
        return await asyncio.to_thread(read_partition, ctx.topology.kafka, topic)

    owner = CronOwner(firer, topic, read, ctx.clock_ms)

    async def membership(stream: Any) -> None:
        # Consuming the topic is what makes the group assign its partition; the state itself
        # is read by the owner from the start of the partition.
        async for _event in stream:
            pass

    app.agent(raw_topic(app, topic), name="msm.scheduler.schedules")(
        fatal(app, "scheduler schedules")(membership)
    )

    async def fire(_app: Any) -> None:
        await owner.run()

    app.task(fatal(app, "scheduler cron")(fire))
    log.info("scheduler: %d schedule(s): %s", len(firer.schedules), ", ".join(firer.schedules))
    return owner


def _event_type(headers: h.HeaderList) -> str:
    return h.get_str(h.to_dict(headers), h.EVENT_TYPE) or ""


def _observe_lateness(lateness_ms: int) -> None:
    """A delayed event went to ready ``lateness_ms`` after its deliver_at (never negative)."""
    metrics = process_metrics()
    metrics.scheduler_forwarded.inc()
    if lateness_ms < 0:
        metrics.scheduler_early.inc()
    metrics.scheduler_lateness.observe(max(lateness_ms, 0) / 1000)
