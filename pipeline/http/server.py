"""Running the worker's HTTP server: ``build_app`` for the routes, ``start_server`` to serve them.

    server = await start_server(topology, HttpSettings(port=8080))
    ...
    await server.stop()   # stops accepting, lets requests in flight finish, closes the publisher

Other layers add routes (``/metrics``) with ``extra_routes`` or, before starting, on the app
that ``build_app`` returns; the :data:`INGRESS` app key holds the handlers and their publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from pipeline.client import AsyncPublisher
from pipeline.http.auth import TokenStore, load_tokens
from pipeline.http.errors import json_errors
from pipeline.http.health import KafkaReadiness, ReadinessCheck
from pipeline.http.ingress import Ingress
from pipeline.http.settings import HttpSettings
from pipeline.topology import Topology

log = logging.getLogger(__name__)
OPEN_WARNING = "HTTP ingress has no tokens: open to anyone (local dev)"
INGRESS = web.AppKey("msm.http.ingress", Ingress)


def build_app(
    publisher: AsyncPublisher,
    *,
    settings: HttpSettings | None = None,
    tokens: TokenStore | None = None,
    ready: ReadinessCheck | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """The app; ``tokens`` default to the environment's (:func:`~pipeline.http.auth.load_tokens`).

    The caller owns ``publisher`` and closes it after the app stopped.
    """
    settings = settings or HttpSettings()
    tokens = load_tokens() if tokens is None else tokens
    if tokens.open:
        log.warning(OPEN_WARNING)
    else:
        unknown = sorted(tokens.event_types() - {"*"} - set(publisher.topology.events))
        if unknown:
            log.warning("HTTP ingress tokens name unknown event types: %s", ", ".join(unknown))
    ready = ready or KafkaReadiness(publisher.topology, settings.ready_timeout_s)
    ingress = Ingress(publisher, tokens, settings, ready)
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[json_errors])
    app[INGRESS] = ingress
    app.add_routes(ingress.routes())
    app.add_routes(list(extra_routes))
    return app


class HttpServer:
    """A started server: where it listens, and how to stop it."""

    def __init__(
        self,
        runner: web.AppRunner,
        publisher: AsyncPublisher,
        owns_publisher: bool,
        settings: HttpSettings,
    ) -> None:
        self.runner = runner
        self.publisher = publisher
        self.settings = settings
        self._owns_publisher = owns_publisher
        self._stopped = False

    @property
    def app(self) -> web.Application:
        return self.runner.app

    @property
    def port(self) -> int:
        """The bound port (the real one when the settings asked for port 0)."""
        for address in self.runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        raise RuntimeError("the HTTP server is not listening")

    @property
    def url(self) -> str:
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then close the publisher if ours."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.runner.cleanup()
        finally:
            if self._owns_publisher:
                await self.publisher.close(self.settings.kafka_timeout_s)


async def start_server(
    topology: Topology,
    settings: HttpSettings | None = None,
    *,
    publisher: AsyncPublisher | None = None,
    tokens: TokenStore | None = None,
    ready: ReadinessCheck | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
) -> HttpServer:
    """Serve the ingress and health routes in the background on the running loop.

    Without ``publisher`` the server makes one (closed by :meth:`HttpServer.stop`) whose
    ``delivery.timeout.ms`` is ``settings.kafka_timeout_s``. Token problems raise
    TokenConfigError before anything listens.
    """
    settings = settings or HttpSettings()
    tokens = load_tokens() if tokens is None else tokens
    owns = publisher is None
    if publisher is None:
        publisher = AsyncPublisher(topology, config=settings.producer_overrides())
    runner: web.AppRunner | None = None
    try:
        app = build_app(
            publisher, settings=settings, tokens=tokens, ready=ready, extra_routes=extra_routes
        )
        runner = web.AppRunner(app, shutdown_timeout=settings.shutdown_timeout_s)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        if owns:
            await publisher.close(0)
        raise
    server = HttpServer(runner, publisher, owns, settings)
    log.info("HTTP ingress listening on %s", server.url)
    return server
