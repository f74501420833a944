"""Liveness and readiness: ``/healthz`` (the loop answers) and ``/readyz`` (Kafka answers).

Ready means a metadata request to the topology's cluster answers within the timeout and every
ingress topic exists, because a publish to a missing topic would hang until its timeout. The
check runs off the event loop and its result is shared for a second, so frequent probes from
an orchestrator cost one metadata request per second at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

log = logging.getLogger(__name__)
# librdkafka's own connection errors would repeat every second while Kafka is down; /readyz
# already reports the state, so they go to a logger that does not propagate.
_librdkafka = logging.getLogger("pipeline.http.health.librdkafka")
_librdkafka.addHandler(logging.NullHandler())
_librdkafka.propagate = False

_SHARED_S = 1.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    message: str
    details: list[Mapping[str, object]] = field(default_factory=list)


ReadinessCheck = Callable[[], Awaitable[Readiness]]


class KafkaReadiness:
    """Whether the topology's cluster answers and has every ingress topic; call it to check."""

    def __init__(self, topology: Topology, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self._kafka = topology.kafka
        names = TopicNames(topology.namespace)
        self._topics = sorted(names.ingress(event) for event in topology.events)
        self._admin: AdminClient | None = None
        self._lock = asyncio.Lock()
        self._last: tuple[float, Readiness] | None = None

    async def __call__(self) -> Readiness:
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < _SHARED_S:
                return self._last[1]
            result = await asyncio.to_thread(self._check)
            was_ready = self._last[1].ready if self._last is not None else True
            if was_ready != result.ready:
                level = logging.INFO if result.ready else logging.WARNING
                log.log(level, "HTTP ingress readiness: %s", result.message)
            self._last = (time.monotonic(), result)
            return result

    def _check(self) -> Readiness:
        if self._admin is None:
            config: dict[str, str | int | float | bool] = {
                **self._kafka.client,
                "bootstrap.servers": self._kafka.bootstrap_servers,
            }
            self._admin = AdminClient(config, logger=_librdkafka)
        try:
            metadata = self._admin.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            return Readiness(False, f"Kafka does not answer: {exc.args[0].str()}")
        if not metadata.brokers:
            return Readiness(False, "Kafka answered without any broker")
        missing = [t for t in self._topics if t not in metadata.topics]
        if missing:
            return Readiness(
                False,
                "ingress topics missing (run `msm topology apply`)",
                [{"topic": t, "message": "missing"} for t in missing],
            )
        return Readiness(True, "ready")
