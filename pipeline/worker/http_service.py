"""The worker's HTTP server (ingress, health, metrics) as a mode service started with it."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from mode import Service

from pipeline.http import HttpSettings, start_server
from pipeline.metrics import process_metrics
from pipeline.topology import Topology


class HttpService(Service):
    def __init__(self, topology: Topology, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topology = topology
        self.settings = settings
        self._server: Any = None

    async def on_start(self) -> None:
        routes = [web.get("/metrics", _metrics)]
        self._server = await start_server(self.topology, self.settings, extra_routes=routes)

    async def on_stop(self) -> None:
        if self._server is not None:
            await self._server.stop()


async def _metrics(_request: web.Request) -> web.Response:
    body = process_metrics().render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
