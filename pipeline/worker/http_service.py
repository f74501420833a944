"""The worker's HTTP server as a mode service started with it: ingress, health and metrics.

Every worker serves it, whatever its layers, so each can be probed and scraped:

* ``/metrics``: the process's Prometheus registry (``docs/metrics.md``);
* ``/healthz``: 200 while the event loop answers (liveness: a blocked loop does not answer);
* ``/readyz``: 200 when Kafka answers with the ingress topics (:class:`KafkaReadiness`) *and*
  every layer app of the worker has joined its consumer group and is not rebalancing; else
  503 naming what is missing;
* the HTTP ingress routes.

More routes (a status page) go in :data:`EXTRA_ROUTES` before the worker starts, or in the
``extra_routes`` argument. ``--http-port 0`` binds a free port; the one chosen is logged and
is :attr:`HttpService.port`.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web
from mode import Service

from pipeline.errors import ConfigError
from pipeline.http import HttpSettings, start_server
from pipeline.http.health import KafkaReadiness, Readiness, ReadinessCheck
from pipeline.metrics import process_metrics
from pipeline.topology import Topology
from pipeline.worker.status_page import StatusPage

log = logging.getLogger(__name__)

# Routes every worker's server adds to its own (e.g. a status page): append before it starts.
EXTRA_ROUTES: list[web.AbstractRouteDef] = []


class WorkerReadiness:
    """Kafka's readiness and then the layer apps': each has finished joining its group."""

    def __init__(self, kafka: ReadinessCheck, apps: Mapping[str, Any]) -> None:
        self.kafka, self.apps = kafka, apps

    async def __call__(self) -> Readiness:
        result = await self.kafka()
        if not result.ready:
            return result
        waiting: list[Mapping[str, object]] = [
            {"layer": layer, "message": reason}
            for layer, app in self.apps.items()
            if (reason := app_not_ready(app)) is not None
        ]
        if waiting:
            layers = ", ".join(str(w["layer"]) for w in waiting)
            return Readiness(False, f"layers not running yet: {layers}", waiting)
        return result


def app_not_ready(app: Any) -> str | None:
    """Why a layer's Faust app is not processing yet, or None."""
    if getattr(app, "rebalancing_count", 0) == 0:
        return "joining its consumer group"
    if getattr(app, "rebalancing", False):
        return "rebalancing"
    return None


class HttpService(Service):
    def __init__(
        self,
        topology: Topology,
        settings: HttpSettings,
        *,
        apps: Mapping[str, Any] | None = None,
        extra_routes: Sequence[web.AbstractRouteDef] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topology = topology
        self.settings = settings
        self.apps = dict(apps or {})
        self.extra_routes = list(extra_routes)
        self._server: Any = None
        self.status_page = StatusPage(topology, process_metrics().registry)  # /status

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.port)

    def routes(self) -> Iterable[web.AbstractRouteDef]:
        routes = [web.get("/metrics", _metrics), *self.status_page.routes()]
        return [*routes, *EXTRA_ROUTES, *self.extra_routes]

    async def on_start(self) -> None:
        kafka = KafkaReadiness(self.topology, self.settings.ready_timeout_s)
        ready = WorkerReadiness(kafka, self.apps)
        try:
            self._server = await start_server(
                self.topology, self.settings, ready=ready, extra_routes=self.routes()
            )
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            where = f"{self.settings.host}:{self.settings.port}"
            raise ConfigError(
                f"HTTP port {where} is in use (another worker?): give each worker its own "
                "--http-port, or --http-port 0 for a free one"
            ) from exc
        self.status_page.start()
        log.info("worker HTTP: /metrics, /healthz, /readyz, /status on %s", self._server.url)

    async def on_stop(self) -> None:
        await self.status_page.stop()
        if self._server is not None:
            await self._server.stop()


async def _metrics(_request: web.Request) -> web.Response:
    body = process_metrics().render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
