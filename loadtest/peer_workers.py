"""The peers' moving parts: publishers, worker subprocesses, the broker queue, the ledger tail.

Workers are started the way their docs tell a user to (``celery -A ... worker``, ``dramatiq
...``) in their own process group, so stopping one reaches its pool children too. The ledger
is read incrementally (new complete lines only): re-reading every file while waiting for a
step to drain would steal CPU from the workers being measured.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

import loadtest
from loadtest.ledger import ENV as LEDGER_ENV
from loadtest.ledger import Run
from loadtest.model import Series
from loadtest.payloads import plan

URL_ENV = "MSM_BENCH_REDIS_URL"
ROOT = Path(loadtest.__file__).resolve().parent.parent
CORES = os.cpu_count() or 2  # both frameworks default to one process per core
Send = Callable[[dict[str, Any], int | None], None]  # (payload, due time in ns or None)


@dataclass(frozen=True)
class Peer:
    name: str
    command: list[str]
    queue_keys: tuple[str, ...]  # Redis lists of waiting messages (LLEN)
    purge_keys: tuple[str, ...]  # what to delete to drop the backlog after a failed step
    send: Send
    config: str  # for the report's notes


def _module(name: str, url: str) -> ModuleType:
    """Import the worker module with the broker URL it reads at import (reload on change)."""
    os.environ[URL_ENV] = url
    module = importlib.import_module(name)
    if getattr(module, "BROKER_URL", url) != url:
        module = importlib.reload(module)
    return module


def celery_peer(url: str) -> Peer:
    module = _module("loadtest.celery_app", url)
    task = module.noop

    def send(payload: dict[str, Any], due_ns: int | None) -> None:
        eta = None if due_ns is None else datetime.fromtimestamp(due_ns / 1e9, tz=UTC)
        task.apply_async(args=(payload,), eta=eta)

    command = [sys.executable, "-m", "celery", "-A", "loadtest.celery_app", "worker"]
    command += ["--concurrency", str(CORES), "--pool", "prefork", "--loglevel", "WARNING"]
    config = f"celery prefork --concurrency {CORES}, prefetch multiplier 4, json, no results"
    keys = module.QUEUE_KEYS
    return Peer("celery", command, keys, keys, send, config)


def dramatiq_peer(url: str) -> Peer:
    module = _module("loadtest.dramatiq_app", url)
    actor = module.noop

    def send(payload: dict[str, Any], due_ns: int | None) -> None:
        if due_ns is not None:
            raise NotImplementedError("the delays scenario compares Celery ETA only")
        actor.send(payload)

    command = [sys.executable, "-m", "dramatiq", "loadtest.dramatiq_app"]
    command += ["--processes", str(CORES), "--threads", "8"]
    config = (
        f"dramatiq --processes {CORES} --threads 8, RedisBroker, default middleware, no results"
    )
    keys = module.QUEUE_KEYS
    return Peer("dramatiq", command, keys, (*keys, *module.MESSAGE_KEYS), send, config)


def publish(peer: Peer, rate: float, seconds: float, start_ns: int, delay_ms: int = 0) -> float:
    """Send each planned event at its planned time (late ones at once); returns offered/s.
    With ``delay_ms`` each event is due at its intended send time plus the delay."""
    count = max(1, round(rate * seconds))
    delay_ns = delay_ms * 1_000_000
    for p in plan(rate, count, start_ns, delay_ms=delay_ms):
        ahead = p.sent_ns - time.time_ns()
        if ahead > 200_000:
            time.sleep(ahead / 1e9)
        peer.send(p.payload, p.sent_ns + delay_ns if delay_ms else None)
    took_ns = max(time.time_ns() - start_ns, round(seconds * 1e9))
    return count / (took_ns / 1e9)


def start_worker(peer: Peer, url: str, ledger_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env[URL_ENV] = url
    env[LEDGER_ENV] = str(ledger_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with log.open("ab") as out:
        return subprocess.Popen(
            peer.command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_worker(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the worker (warm shutdown), then SIGKILL its whole process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):  # its own group (start_new_session): children
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass
class LedgerTail:
    """Runs appended to ``directory/*.ledger`` since the last poll (complete lines only)."""

    directory: Path
    _offsets: dict[Path, int] = field(default_factory=dict)

    def poll(self) -> list[Run]:
        found: list[Run] = []
        for path in sorted(self.directory.glob("*.ledger")):
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self._offsets[path] = self._offsets.get(path, 0) + end
            for line in data[:end].decode("ascii").splitlines():
                parts = line.split(" ")
                if len(parts) >= 5:
                    sub = parts[5] if len(parts) > 5 else ""
                    sent, started, finished, pid = (int(x) for x in parts[1:5])
                    found.append(Run(parts[0], sent, started, finished, pid, sub))
        return found


class BacklogSampler:
    """Samples the broker queue length (sum of LLEN over the peer's queue keys) in a thread."""

    def __init__(self, url: str, keys: tuple[str, ...], every_s: float = 0.25) -> None:
        self._client = redis.Redis.from_url(url)
        self._keys = keys
        self._every = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: Series = []
        self._t0 = 0.0

    def length(self) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in self._keys:
            pipe.llen(key)
        return int(sum(pipe.execute()))

    def purge(self, keys: tuple[str, ...]) -> None:
        self._client.delete(*keys)

    def start(self) -> None:
        self.samples, self._t0 = [], time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="backlog", daemon=True)
        self._thread.start()

    def stop(self) -> Series:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples

    def close(self) -> None:
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((time.monotonic() - self._t0, float(self.length())))
