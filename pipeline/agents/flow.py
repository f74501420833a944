"""Layer 3, flow control's fan-out: ``<ns>.ready`` in, one task per matching subscriber out.

Each ready event becomes a task on ``<ns>.sub.<subscriber>`` for every subscriber whose
``events`` and ``filter`` match (:mod:`flow_fanout`), with the event's key (so per-key order holds
in the subscriber's queue), payload bytes untouched, and the event's headers plus
``msm.subscriber`` and ``msm.attempt`` = 1. Each task's PENDING state goes to ``<ns>.tasks``.
Records are taken in batches and a batch is acked only once every produce it caused is
acknowledged (at least once). Capacity, rate and priority are enforced per subscriber behind
its queue, by the gates of delivery and execution, so a slow subscriber never holds back
this fan-out or another subscriber.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from pipeline import headers as h
from pipeline.agents.base import LayerContext, raw_topic
from pipeline.agents.flow_fanout import Fanned, Fanout, Throttle
from pipeline.metrics import LayerFlow, process_metrics
from pipeline.tasks import TaskState, state_record
from pipeline.worker.fatal import fatal
from pipeline.worker.take import take_ready

log = logging.getLogger(__name__)
BATCH_MAX = 500
ERROR_LOG_INTERVAL_S = 60.0


def register(app: Any, ctx: LayerContext) -> None:
    fanout = Fanout.from_topology(ctx.topology)
    tasks_topic = ctx.names.tasks
    throttle = Throttle(ERROR_LOG_INTERVAL_S)
    metrics = process_metrics()
    counts = LayerFlow(metrics, "flow")

    async def flow(stream: Any) -> None:
        producer = await app.maybe_start_producer()
        async for events in take_ready(stream, BATCH_MAX):
            sends: list[Awaitable[Any]] = []
            now = ctx.clock_ms()
            for event in events:
                msg = event.message
                headers = h.from_consumed(msg.headers)
                value = msg.value or b""
                fanned = fanout.route(headers, value)
                _account(fanned, headers, throttle, metrics)
                named = h.to_dict(headers)
                event_type = h.get_str(named, h.EVENT_TYPE) or ""
                counts.came_in(event_type)
                for task in fanned.tasks:
                    counts.went_out(event_type, task.subscriber)
                    sends.append(
                        await producer.send(task.topic, msg.key, value, None, None, task.headers)
                    )
                    key, state = state_record(
                        named, task.subscriber, TaskState.PENDING, now, attempt=1
                    )
                    sends.append(await producer.send(tasks_topic, key, state, None, None, []))
            await asyncio.gather(*sends)  # every task and state record acknowledged ...
            for event in events:
                await stream.ack(event)  # ... before the ready offset may be committed

    app.agent(raw_topic(app, ctx.names.ready), name="msm.flow")(fatal(app, "flow")(flow))


def _account(fanned: Fanned, headers: h.HeaderList, throttle: Throttle, metrics: Any) -> None:
    for task in fanned.tasks:
        metrics.flow_tasks.labels(task.subscriber).inc()
    for subscriber in fanned.filtered:
        metrics.flow_filtered.labels(subscriber).inc()
    for failure in fanned.errors:
        metrics.flow_filter_errors.labels(failure.subscriber).inc()
        left_out = throttle.allow(failure.subscriber)
        if left_out is None:
            continue
        event_id = h.get_str(h.to_dict(headers), h.EVENT_ID)
        more = f" ({left_out} more since the last report)" if left_out else ""
        log.warning(
            "flow: filter of %s failed on event %s, counted as no match: %s%s",
            failure.subscriber,
            event_id,
            failure.reason,
            more,
        )
