"""A throwaway Redis for the peers (Celery, Dramatiq): Debian's redis-server, no persistence.

Started on a free localhost port in its own temp dir so it never touches a Redis the machine may
run, and so a crashed run leaves nothing behind that the next one would read. No RDB, no AOF:
the peers should pay for the broker's work, not for disk syncs MSM's broker would not do either.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BINARY = "/usr/bin/redis-server"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RedisServer:
    port: int
    pid: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int) -> bool:
    """True when a Redis answers PING on ``port`` (raw RESP: no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(parent: Path | None = None, binary: str = BINARY) -> Iterator[RedisServer]:
    """Run redis-server for the ``with`` block; stopped (then killed) and its dir removed after."""
    if shutil.which(binary) is None:
        raise RuntimeError(f"{binary} not found (apt-get install redis-server)")
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    # Absolute: redis-server changes to --dir before it opens a relative --logfile.
    directory = Path(tempfile.mkdtemp(prefix="redis-", dir=parent)).resolve()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, port = _start(binary, directory)
        yield RedisServer(port=port, pid=proc.pid, directory=directory)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def _start(binary: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    for _attempt in range(3):  # the free port may be taken between probe and bind: retry
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(directory), "--logfile", str(directory / "redis.log")]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if ping(port):
                return proc, port
            time.sleep(0.05)
        _stop(proc)
    log = directory / "redis.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"redis-server did not start: {tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
