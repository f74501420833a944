"""The worker's HTTP server (ingress, health) as a mode service, started and stopped with it."""

from __future__ import annotations

from typing import Any

from mode import Service

from pipeline.http import HttpSettings, start_server
from pipeline.topology import Topology


class HttpService(Service):
    def __init__(self, topology: Topology, settings: HttpSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topology = topology
        self.settings = settings
        self._server: Any = None

    async def on_start(self) -> None:
        self._server = await start_server(self.topology, self.settings)

    async def on_stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
