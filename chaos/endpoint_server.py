"""The HTTP endpoint of the slow-endpoint scenario: an aiohttp server in a thread of the harness.

Delivery pushes the ``remote`` subscriber's tasks here. What the server answers depends on its
:class:`Mode`, which the scenario switches while the load runs: ``healthy`` (200 at once),
``slow`` (200 after an injected latency) or ``unavailable`` (503 with ``Retry-After``: the
endpoint says honestly when to come back). Every request it accepts (2xx) is an execution of
the ``remote`` subscriber, recorded in the ledger like a handler's, so the checker counts its
losses the same way. ``GET /health`` answers 503 while unavailable, 200 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from chaos.ledger import Execution, LedgerWriter

HOOK = "/remote"
HEALTH = "/health"


@dataclass(frozen=True)
class Mode:
    """How the endpoint answers: ``latency_ms`` (low, high) before a 200, or a 503 with the
    ``retry_after_s`` values in turn."""

    name: str
    latency_ms: tuple[int, int] = (0, 0)
    retry_after_s: tuple[int, ...] = ()

    @property
    def available(self) -> bool:
        return not self.retry_after_s


HEALTHY = Mode("healthy")
HEALED = Mode("healed")  # healthy again after the faults: counted apart


def slow(low_ms: int, high_ms: int) -> Mode:
    return Mode("slow", latency_ms=(low_ms, high_ms))


def unavailable(*retry_after_s: int) -> Mode:
    return Mode("unavailable", retry_after_s=retry_after_s or (1, 2))


@dataclass(frozen=True)
class Answer:
    status: int
    delay_s: float = 0.0
    retry_after_s: int | None = None


def answer(mode: Mode, n: int) -> Answer:
    """The answer to the ``n``-th request (from 0) in ``mode``: deterministic, no RNG, so the
    latencies spread over the range and the Retry-After values take turns."""
    if not mode.available:
        return Answer(503, retry_after_s=mode.retry_after_s[n % len(mode.retry_after_s)])
    low, high = mode.latency_ms
    return Answer(200, delay_s=(low + (n * 7919) % (high - low + 1)) / 1000)


def execution(headers: dict[str, str], body: bytes, started_ns: int) -> Execution | None:
    """The ledger line of an accepted push; None when the request is not one of delivery's."""
    try:
        payload = json.loads(body)
        key, seq = str(payload["key"]), int(payload["seq"])
        attempt = int(headers.get("X-MSM-Attempt", "0"))
    except (ValueError, TypeError, KeyError):
        return None
    event_id = headers.get("X-MSM-Event-Id", "")
    subscriber = headers.get("X-MSM-Subscriber", "")
    if not event_id or not subscriber:
        return None
    return Execution(subscriber, event_id, key, seq, attempt, os.getpid(), started_ns)


@dataclass
class Stats:
    """What the endpoint saw: requests by mode and status, the most at once, the top attempt."""

    by_mode: Counter[tuple[str, int]] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    max_attempt: int = 0

    def count(self, status: int, mode: str | None = None) -> int:
        return sum(n for (m, s), n in self.by_mode.items() if s == status and mode in (None, m))

    @property
    def requests(self) -> int:
        return sum(self.by_mode.values())


class EndpointServer:
    """Serves on a free port of 127.0.0.1 while :meth:`running`; :attr:`mode` may change at any
    time (a request takes the mode it arrives in)."""

    def __init__(self, ledger_dir: Path) -> None:
        self.mode = HEALTHY
        self.port = 0
        self.stats = Stats()
        self._ledger_dir = ledger_dir
        self._ledger: LedgerWriter | None = None
        self._lock = threading.Lock()
        self._seen = 0

    def url(self, path: str = HOOK) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self) -> Stats:
        with self._lock:
            s = self.stats
            return Stats(Counter(s.by_mode), s.in_flight, s.peak_in_flight, s.max_attempt)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(HOOK, self._hook)
        app.router.add_get(HEALTH, self._health)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        started = time.time_ns()
        mode = self.mode
        with self._lock:
            n, self._seen = self._seen, self._seen + 1
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        try:
            body = await request.read()
            reply = answer(mode, n)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            status = reply.status
            if status < 300:
                status = self._accept(dict(request.headers), body, started)
        finally:
            with self._lock:
                self.stats.in_flight -= 1
        with self._lock:
            self.stats.by_mode[(mode.name, status)] += 1
        if reply.retry_after_s is None:
            return web.Response(status=status)
        return web.Response(status=status, headers={"Retry-After": str(reply.retry_after_s)})

    def _accept(self, headers: dict[str, str], body: bytes, started_ns: int) -> int:
        """Record the execution before answering 200, as a handler records before returning."""
        run = execution(headers, body, started_ns)
        if run is None:
            return 400
        if self._ledger is None:
            self._ledger = LedgerWriter(self._ledger_dir)
        self._ledger.write(run)
        with self._lock:
            self.stats.max_attempt = max(self.stats.max_attempt, run.attempt)
        return 200

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.mode.available else 503)

    @contextmanager
    def running(self) -> Iterator[EndpointServer]:
        """Serve from a thread with its own event loop; stopped when the block ends."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)

        async def start() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.port = runner.addresses[0][1]
            started.set()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        thread = threading.Thread(target=serve, name="chaos-endpoint", daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("the chaos endpoint did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
