"""A scriptable HTTP endpoint in the test process, for delivery's HTTP subscribers.

An aiohttp server runs on a free local port in a thread of its own. ``POST /hook/<name>``
records the request and answers what the test scripted for ``<name>`` (status, headers, a delay
first), by the count of requests for the same event; ``GET /health/<name>`` answers the status
the test set, 200 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class Request:
    name: str
    headers: dict[str, str]
    body: object
    at: float  # time.monotonic() when it arrived

    @property
    def event_id(self) -> str:
        return self.headers.get("X-MSM-Event-Id", "")

    @property
    def attempt(self) -> int:
        return int(self.headers.get("X-MSM-Attempt", "0"))


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


# (the request, how many requests for its event this endpoint had before it) -> the answer
Script = Callable[[Request, int], Answer]


class HttpTarget:
    def __init__(self) -> None:
        self.port = 0
        self.scripts: dict[str, Script] = {}
        self.health: dict[str, int] = {}
        self._requests: list[Request] = []
        self._lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def requests(self, name: str) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if r.name == name]

    def wait_for(
        self, name: str, done: Callable[[list[Request]], bool], what: str, timeout_s: float = 20
    ) -> list[Request]:
        deadline = time.monotonic() + timeout_s
        while not done(self.requests(name)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.05)
        return self.requests(name)

    async def _hook(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        got = Request(name, dict(request.headers), json.loads(raw), time.monotonic())
        with self._lock:
            before = sum(1 for r in self._requests if r.name == name and r.event_id == got.event_id)
            self._requests.append(got)
        script = self.scripts.get(name)
        answer = script(got, before) if script is not None else Answer()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, headers=answer.headers, text="scripted")

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health.get(request.match_info["name"], 200))

    @contextmanager
    def running(self) -> Iterator[HttpTarget]:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        app = web.Application()
        app.router.add_post("/hook/{name}", self._hook)
        app.router.add_get("/health/{name}", self._health)
        runner = web.AppRunner(app, handle_signals=False)

        async def start() -> None:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            started.set()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        thread = threading.Thread(target=serve, name="http-target", daemon=True)
        thread.start()
        assert started.wait(10), "the test endpoint did not start"
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
