"""Health of delivery targets, watched in the background: a target with no healthy instance
gets its deliveries held (the backlog waits in Kafka, nothing fails) until one is back.

* HTTP endpoints with a ``health_check``: a GET every :data:`INTERVAL_S`, 2xx within 2 s.
* Execution workers "heartbeat" through their consumer group, ``<ns>.execution``: a worker that
  runs a subscriber's handlers is a live member assigned partitions of ``<ns>.exec.<s>``.
  Kafka already tracks that liveness (session timeouts), so no heartbeat topic is needed: one
  describe of the group every :data:`INTERVAL_S` answers for every handler subscriber.

Both feed a :class:`~pipeline.agents.delivery_health.HealthState` per subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient

from pipeline.agents.delivery_health import Change, HealthState, assigned_topics
from pipeline.agents.delivery_http import Session, probe
from pipeline.gate.pump import Pump
from pipeline.metrics import Metrics
from pipeline.topology import KafkaSettings

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
DESCRIBE_TIMEOUT_S = 5.0
UNHEALTHY = "unhealthy"
NO_WORKER = "no execution worker"


class Target:
    """One subscriber's target: its health, its gate, its gauge."""

    def __init__(self, subscriber: str, pump: Pump, reason: str, metrics: Metrics) -> None:
        self.subscriber, self.pump, self.reason = subscriber, pump, reason
        self.health = HealthState()
        self._gauge = metrics.delivery_target_healthy.labels(subscriber)
        self._gauge.set(1)

    def observe(self, ok: bool, what: str) -> None:
        change = self.health.observe(ok)
        if change is Change.DOWN:
            self.pump.hold(self.reason)
            self._gauge.set(0)
            log.warning(
                "delivery %s: %s (%d checks in a row): deliveries paused",
                self.subscriber,
                what,
                self.health.failures,
            )
        elif change is Change.UP:
            self.pump.release(self.reason)
            self._gauge.set(1)
            log.info("delivery %s: %s: deliveries resumed", self.subscriber, what)


async def _every(seconds: float, started: float) -> None:
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))


async def watch_endpoint(target: Target, url: str, session: Session) -> None:
    """Probe ``url`` forever (cancelled when the worker stops)."""
    while True:
        started = time.monotonic()
        try:
            ok = await probe(session.get(), url)
        except RuntimeError:  # the session closed: the worker is stopping
            return
        target.observe(ok, f"health check {url} {'answers' if ok else 'fails'}")
        await _every(INTERVAL_S, started)


class ExecutionGroup:
    """Which ``<ns>.exec.<s>`` topics have a live member of the execution group.

    Asked through aiokafka's admin client, not librdkafka's: librdkafka's
    ``describe_consumer_groups`` aborts the whole process (an assertion on ``eonce->refcnt``,
    confluentinc/librdkafka#4605) when its coordinator lookup times out around a broker
    restart, which the chaos suite's broker-kill scenario hit in the delivery worker.
    """

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self._bootstrap = kafka.bootstrap_servers
        self.group = group
        self._admin: AIOKafkaAdminClient | None = None

    async def assigned(self) -> set[str] | None:
        """Topics assigned to some member; None when Kafka did not answer (no verdict)."""
        try:
            async with asyncio.timeout(DESCRIBE_TIMEOUT_S):
                admin = await self._connected()
                responses = await admin.describe_consumer_groups([self.group])
        except Exception as exc:  # a timeout, a broker gone, a coordinator moving
            log.debug("describing group %s failed: %r", self.group, exc)
            await self.close()  # a fresh client next time: no state left from the outage
            return None
        groups = [g for r in responses for g in r.to_object()["groups"] if g["group"] == self.group]
        return assigned_topics(groups[0]) if groups else None

    async def _connected(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap,
                request_timeout_ms=int(DESCRIBE_TIMEOUT_S * 1000),
                client_id=f"{self.group}-watch",
            )
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await admin.close()
            except Exception as exc:  # closing a client whose broker is gone
                log.debug("closing the admin client of %s: %r", self.group, exc)


async def watch_execution(group: ExecutionGroup, targets: Mapping[str, Target]) -> None:
    """``targets`` by exec topic; check their workers forever (cancelled on stop)."""
    try:
        while True:
            started = time.monotonic()
            topics = await group.assigned()
            if topics is not None:
                for topic, target in targets.items():
                    ok = topic in topics
                    what = f"execution workers {'present' if ok else 'missing'} on {topic}"
                    target.observe(ok, what)
            await _every(INTERVAL_S, started)
    finally:
        await group.close()
