"""Layer 5, execution: each handler subscriber's ``<ns>.exec.<s>`` in, its handler run.

One gate :class:`~pipeline.gate.pump.Pump` per subscriber (its own agent, so a subscriber that
hangs holds back only itself) calls :class:`~pipeline.agents.execution_task.Executor.process`
for each task, at most ``max_in_flight`` (this worker's share), the autoscaled concurrency and
the adaptive limit of :class:`~pipeline.agents.execution_backoff.Backoff` at once. Results go to
``<ns>.done.<s>`` (dedup), ``<ns>.tasks`` (state) and, for failures, ``<ns>.outcomes``
(delivery retries or dead-letters them). An operator's pause or drop (``msm subscriber``)
holds this gate too (:mod:`~pipeline.agents.delivery_control`).

Handlers are imported here, at registration, so a wrong dotted path stops the worker at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from pipeline.agents.base import LayerContext, producer_send
from pipeline.agents.delivery_control import Gates, drop_to_dlq, follow_control
from pipeline.agents.delivery_failures import Failures
from pipeline.agents.execution_backoff import Backoff
from pipeline.agents.execution_canary import Canary, Version
from pipeline.agents.execution_dedup import DoneLoader, DoneSet, Entries, Read, read_done
from pipeline.agents.execution_handlers import Handler, Runner, load_handler
from pipeline.agents.execution_scale import TICK_S, Autoscaler
from pipeline.agents.execution_task import Executor
from pipeline.avro.schemas import EventSchemas
from pipeline.gate.agent import attach_pump
from pipeline.gate.pump import Pump
from pipeline.metrics import Metrics, process_metrics
from pipeline.topology.subscribers import SubscriberSpec
from pipeline.topology.topics import plan_topics
from pipeline.worker.fatal import fatal

log = logging.getLogger(__name__)

_MS = timedelta(milliseconds=1)
PRUNE_EVERY_S = 60.0


class _Subscriber:
    """One handler subscriber's parts in this worker."""

    def __init__(self, spec: SubscriberSpec, pump: Pump, loader: DoneLoader, done: DoneSet) -> None:
        self.spec, self.pump, self.loader, self.done = spec, pump, loader, done
        self.scaler = Autoscaler(spec.concurrency.min, spec.concurrency.max, time.monotonic)
        pump.concurrency = self.scaler.limit


def register(app: Any, ctx: LayerContext) -> None:
    topology, names = ctx.topology, ctx.names
    specs = [s for _, s in sorted(topology.subscribers.items()) if s.handler is not None]
    handlers = {s.name: _load(s) for s in specs}  # before anything else: a typo stops the start
    # Faust's livelock patience: attach_pump raises it (tasks wait unacked in the gate).
    partitions = {p.name: p.partitions for p in plan_topics(topology)}
    schemas = _schemas(ctx, specs)
    metrics = process_metrics()

    send = producer_send(app)
    subs: list[_Subscriber] = []
    gates = Gates("execution")  # operator pause and drop (`msm subscriber`), as in delivery
    failures = Failures(names, send, metrics, clock_ms=ctx.clock_ms)
    for spec in specs:
        done = DoneSet(spec.dedup_window // _MS)
        loader = DoneLoader(done, _reader(ctx, names.done(spec.name)))
        executor = Executor(
            spec,
            names,
            {e: schemas[e] for e in spec.events},
            handlers[spec.name],
            Runner(spec.name, spec.timeout.total_seconds()),
            done,
            loader.ensure,
            send,
            metrics,
            canary=Canary.from_spec(spec.canary) if spec.canary is not None else None,
            generation=loader.generation,
            clock_ms=ctx.clock_ms,
        )
        topic = names.execution(spec.name)
        dropped = drop_to_dlq(spec, failures, ctx.clock_ms)
        pump = Pump(
            "execution",
            spec.name,
            gates.guard(spec.name, executor.process, dropped),
            max_in_flight=spec.max_in_flight,
            partitions=partitions[topic],
            rate=spec.rate_limit,
            ordered=spec.ordered,
            default_lane=spec.priority,
        )
        executor.backoff = Backoff(spec.name, spec.max_in_flight, spec.concurrency.max, pump)
        attach_pump(app, topic, pump, f"msm.execution.{spec.name}")
        gates.add(spec.name, pump)
        subs.append(_Subscriber(spec, pump, loader, done))
        metrics.execution_concurrency.labels(spec.name).set(pump.concurrency or 0)
        if spec.canary is not None:
            metrics.canary_percent.labels(spec.name).set(spec.canary.percent)
    if specs:
        follow_control(app, ctx, gates)
    _hooks(app, ctx, subs, metrics)
    log.info("execution: %d handler subscriber(s): %s", len(specs), ", ".join(handlers))


def _load(spec: SubscriberSpec) -> dict[Version, Handler]:
    assert spec.handler is not None
    found: dict[Version, Handler] = {"stable": load_handler(spec.handler, spec.name)}
    if spec.canary is not None:
        found["canary"] = load_handler(spec.canary.handler, spec.name)
    return found


def _schemas(ctx: LayerContext, specs: list[SubscriberSpec]) -> dict[str, EventSchemas]:
    events = {e for s in specs for e in s.events}
    return {
        e: EventSchemas.load(spec.schema_path, spec.previous_schemas)
        for e, spec in ctx.topology.events.items()
        if e in events
    }


def _reader(ctx: LayerContext, topic: str) -> Read:
    kafka = ctx.topology.kafka

    async def read(partitions: list[int]) -> Entries:
        return await asyncio.to_thread(read_done, kafka, topic, partitions)

    return read


def _hooks(app: Any, ctx: LayerContext, subs: list[_Subscriber], metrics: Metrics) -> None:
    by_topic = {ctx.names.execution(s.spec.name): s for s in subs}

    def partitions(tps: set[Any], topic: str) -> list[int]:
        return [tp.partition for tp in tps if tp.topic == topic]

    async def on_revoked(_sender: Any, revoked: set[Any], **_: Any) -> None:
        for topic, sub in by_topic.items():
            sub.loader.forget(partitions(revoked, topic))

    async def on_assigned(_sender: Any, assigned: set[Any], **_: Any) -> None:
        for topic, sub in by_topic.items():  # read ahead of the first task of each partition
            sub.loader.prefetch(partitions(assigned, topic))

    async def on_shutdown(_sender: Any, **_: Any) -> None:
        for sub in subs:
            await sub.loader.close()

    async def scale(_app: Any) -> None:
        since_prune = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            since_prune += TICK_S
            for sub in subs:
                limit = sub.scaler.tick(sub.pump.backlog(), sub.pump.in_flight)
                if limit != sub.pump.concurrency:
                    log.info("execution %s: concurrency %d", sub.spec.name, limit)
                    sub.pump.concurrency = limit
                    metrics.execution_concurrency.labels(sub.spec.name).set(limit)
                if since_prune >= PRUNE_EVERY_S:
                    sub.done.prune(ctx.clock_ms())
            since_prune = 0.0 if since_prune >= PRUNE_EVERY_S else since_prune

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
    app.on_before_shutdown.connect(on_shutdown)
    if subs:
        app.task(fatal(app, "execution autoscale")(scale))
