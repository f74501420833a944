"""Layer 1, the frontend: every event's ingress topic in; ``ready``, ``accepted`` or
``rejected`` out.

Validation and decoding happen once, here (see :mod:`frontend_normalize`). An event with no
``deliver_at`` (nor delay) goes straight to ``ready``: the scheduler would only forward it
unchanged, to the same partition (both topics have the shared partition count and are keyed
alike), and each Kafka hop costs a fetch, a produce and a few milliseconds. Events to be
delivered later go to ``accepted`` for the scheduler. Records are taken
in batches; each batch's produces are awaited before its events are acked, so an offset is only
committed once what it produced is on Kafka (at least once). Bad input never stops the agent:
it becomes a record on the rejected topic with its reason.

Records go to the app's producer directly rather than through ``Topic.send``: Faust guards
``Topic._get_producer`` with mode's ``stampede``, which yields to the event loop three times per
record, and those yields cost some 400 us per event, twenty times the decoding itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from pipeline.agents.base import LayerContext
from pipeline.agents.frontend_normalize import Accepted, Normalizer
from pipeline.metrics import LayerFlow, process_metrics
from pipeline.worker.fatal import fatal
from pipeline.worker.logs import Summary
from pipeline.worker.take import take_ready

log = logging.getLogger(__name__)
BATCH_MAX = 500


def register(app: Any, ctx: LayerContext) -> None:
    normalizer = Normalizer(ctx.topology, clock_ms=ctx.clock_ms)
    ingress = app.topic(*normalizer.ingress_topics, value_serializer="raw", key_serializer="raw")
    accepted, rejected, ready = ctx.names.accepted, ctx.names.rejected, ctx.names.ready
    metrics = process_metrics()
    flow = LayerFlow(metrics, "frontend")
    event_of = {ctx.names.ingress(name): name for name in ctx.topology.events}
    # One line per record would flood the log in a poison storm; the counts are in metrics.
    rejections = Summary(log, "frontend: records rejected")

    async def frontend(stream: Any) -> None:
        producer = await app.maybe_start_producer()
        async for events in take_ready(stream, BATCH_MAX):
            sends: list[Awaitable[Any]] = []
            for event in events:
                msg = event.message
                out = normalizer.normalize(
                    msg.topic, msg.key, msg.value, msg.headers, msg.partition, msg.offset
                )
                event_type = event_of.get(msg.topic, "")
                flow.came_in(event_type)
                if isinstance(out, Accepted):
                    topic = ready if out.deliver_at_ms is None else accepted
                    metrics.frontend_accepted.labels(out.event_type).inc()
                    flow.went_out(out.event_type)
                else:
                    topic = rejected
                    metrics.frontend_rejected.labels(event_type, out.reason).inc()
                    rejections.note(out.reason)
                    log.debug(
                        "rejected %s[%d]@%d: %s %s",
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        out.reason,
                        out.field,
                    )
                sends.append(
                    await producer.send(topic, out.key, out.value, None, None, out.headers)
                )
            await asyncio.gather(*sends)  # every record acknowledged (acks=all) ...
            for event in events:
                await stream.ack(event)  # ... before its source offset may be committed

    app.agent(ingress, name="msm.frontend")(fatal(app, "frontend")(frontend))
