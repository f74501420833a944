"""Layer 4, delivery: each subscriber's ``<ns>.sub.<s>`` in; its target, retries and dead
letters out.

Every subscriber gets its own gate (:class:`~pipeline.gate.pump.Pump`: in-flight cap, rate
limit, priority lanes, holds), so one whose target hangs or fails holds back only itself. Its
tasks go to execution through ``<ns>.exec.<s>`` (``handler:``) or are pushed over HTTP
(``endpoint:``, :mod:`delivery_endpoint`). Failed attempts, HTTP ones and the outcome records
execution sends to ``<ns>.outcomes``, take one path (:mod:`delivery_failures`): retry through
the scheduler's delay tiers, or the dead-letter topic. Targets are watched in the background
(:mod:`delivery_watch`); one with no healthy instance is held, not failed, and so is an
endpoint that answers 429 or 503 with ``Retry-After``, until then (:mod:`delivery_endpoint`).
An operator's pause or drop (``msm subscriber``) is applied by :mod:`delivery_control`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any

from pipeline import headers as h
from pipeline.agents.base import LayerContext, producer_send, raw_topic
from pipeline.agents.delivery_control import Gates, drop_to_dlq, follow_control
from pipeline.agents.delivery_endpoint import EndpointDelivery, handler_process, read_chain
from pipeline.agents.delivery_failures import Failed, Failures
from pipeline.agents.delivery_http import Session
from pipeline.agents.delivery_json import PayloadJson
from pipeline.agents.delivery_policy import Outcome
from pipeline.agents.delivery_watch import (
    NO_WORKER,
    UNHEALTHY,
    ExecutionGroup,
    Target,
    watch_endpoint,
    watch_execution,
)
from pipeline.gate.agent import SHUTDOWN_GRACE_S, attach_pump
from pipeline.gate.pump import Pump
from pipeline.metrics import process_metrics
from pipeline.topology.topics import plan_topics
from pipeline.worker.fatal import fatal
from pipeline.worker.take import take_ready

log = logging.getLogger(__name__)
BATCH_MAX = 500


def register(app: Any, ctx: LayerContext) -> None:
    topology, names = ctx.topology, ctx.names
    metrics = process_metrics()
    partitions = {p.name: p.partitions for p in plan_topics(topology)}

    send = producer_send(app)
    failures = Failures(names, send, metrics, clock_ms=ctx.clock_ms)
    session = Session()
    payloads: PayloadJson | None = None
    pumps: list[Pump] = []
    workers: dict[str, Target] = {}  # handler subscribers' targets, by exec topic
    gates = Gates("delivery")  # operator pause and drop (`msm subscriber`)
    for name in sorted(topology.subscribers):
        spec = topology.subscribers[name]
        topic = names.sub(name)
        endpoint: EndpointDelivery | None = None
        if spec.handler is not None:
            process = handler_process(names.execution(name), send, ctx.clock_ms)
        else:
            payloads = payloads or PayloadJson(topology)
            endpoint = EndpointDelivery(spec, failures, payloads, session, metrics, ctx.clock_ms)
            process = endpoint.process
        process = gates.guard(name, process, drop_to_dlq(spec, failures, ctx.clock_ms))
        pump = Pump(
            "delivery",
            name,
            process,
            max_in_flight=spec.max_in_flight,
            partitions=partitions[topic],
            rate=spec.rate_limit,
            ordered=spec.ordered,
            default_lane=spec.priority,
        )
        if endpoint is not None:
            endpoint.pump = pump
        attach_pump(app, topic, pump, f"msm.delivery.{name}")
        gates.add(name, pump)
        pumps.append(pump)
        if spec.handler is not None:
            workers[names.execution(name)] = Target(name, pump, NO_WORKER, metrics)
        elif spec.health_check is not None:
            target = Target(name, pump, UNHEALTHY, metrics)
            _watch_endpoint(app, target, str(spec.health_check), session)

    if workers:
        group = ExecutionGroup(topology.kafka, f"{topology.namespace}.execution")

        async def heartbeat(_app: Any) -> None:
            await watch_execution(group, workers)

        app.task(fatal(app, "delivery execution health")(heartbeat))
    follow_control(app, ctx, gates)
    _outcomes_agent(app, ctx, failures)

    async def on_shutdown(_sender: Any, **_: Any) -> None:
        # In-flight pushes get the gate's grace to finish, then end (cancelled) before the
        # session closes.
        await asyncio.gather(*(pump.stop(SHUTDOWN_GRACE_S) for pump in pumps))
        await session.close()

    app.on_before_shutdown.connect(on_shutdown)
    log.info("delivery: %d subscriber(s): %s", len(pumps), ", ".join(sorted(topology.subscribers)))


def _watch_endpoint(app: Any, target: Target, url: str, session: Session) -> None:
    async def health(_app: Any) -> None:
        await watch_endpoint(target, url, session)

    app.task(fatal(app, f"delivery {target.subscriber} health")(health))


def _outcomes_agent(app: Any, ctx: LayerContext, failures: Failures) -> None:
    """Execution's failed attempts: retried or dead-lettered like failed HTTP pushes."""
    subscribers = ctx.topology.subscribers

    async def outcomes(stream: Any) -> None:
        async for events in take_ready(stream, BATCH_MAX):
            pending: list[Awaitable[object]] = []
            for event in events:
                msg = event.message
                headers = h.from_consumed(msg.headers)
                values = h.to_dict(headers)
                name = h.get_str(values, h.SUBSCRIBER) or ""
                spec = subscribers.get(name)
                if spec is None:
                    log.warning(
                        "outcome %s[%d]@%d for unknown subscriber %r ignored",
                        msg.topic,
                        msg.partition,
                        msg.offset,
                        name,
                    )
                    continue
                failed = Failed(
                    msg.key,
                    msg.value or b"",
                    headers,
                    h.get_int(values, h.ATTEMPT) or 1,
                    read_chain(headers, name),
                )
                pending += await failures.handle(
                    spec, failed, _outcome(values, name), _retry_after(values)
                )
            await asyncio.gather(*pending)  # retries and dead letters on Kafka ...
            for event in events:
                await stream.ack(event)  # ... before the outcomes are committed

    topic = raw_topic(app, ctx.names.outcomes)
    app.agent(topic, name="msm.delivery.outcomes")(fatal(app, "delivery outcomes")(outcomes))


def _outcome(headers: Mapping[str, bytes], subscriber: str) -> Outcome:
    value = h.get_str(headers, h.OUTCOME)
    try:
        return Outcome(value or "")
    except ValueError:
        log.warning("outcome for %s: %s=%r read as retriable", subscriber, h.OUTCOME, value)
        return Outcome.RETRIABLE


def _retry_after(headers: Mapping[str, bytes]) -> timedelta | None:
    ms = h.get_int(headers, h.RETRY_AFTER_MS)
    return None if ms is None or ms < 0 else timedelta(milliseconds=ms)
