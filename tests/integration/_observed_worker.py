"""A five-layer ``msm worker`` serving HTTP (``/metrics``, ``/status``) for the observability
tests (Prometheus, the status page), and the real tools they run.

The tools come from Debian (``make test-deps`` installs them). In CI a missing tool fails the
test; elsewhere, when it is missing and cannot be installed, the test skips and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.client import Publisher
from pipeline.topology import Topology
from tests.worker_support import FAST_SESSIONS, MSM, REPO, Worker, applied_topology

H = "tests.integration.e2e_handlers:"
LAYERS = ["frontend", "scheduler", "flow", "delivery", "execution"]
EVENT = "thing.created"
DOCUMENT: dict[str, Any] = {
    "delay_tiers": ["1s"],
    "events": {EVENT: {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"}},
    "subscribers": {
        "audit": {"events": [EVENT], "handler": H + "record"},
        "small": {"events": [EVENT], "filter": "size < 100", "handler": H + "record"},
    },
}
ARTIFACTS = REPO / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tool(name: str) -> str:
    """The tool's path; fails in CI when it is missing, skips elsewhere (saying why)."""
    path = shutil.which(name)
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed: `make test-deps` installs it (apt-get)")
    pytest.skip(f"{name} is not installed and this is not CI: run `make test-deps` (apt-get)")


class HttpLayersWorker(Worker):
    """``msm worker`` with every layer, serving HTTP on ``port``."""

    def __init__(self, topology: Topology, log_path: Path, port: int, ledger: Path) -> None:
        self.log_path = log_path
        self._offset = 0
        self._log = log_path.open("ab")
        self.started = time.monotonic()
        command = [str(MSM), "--topology", str(topology.source_path), "worker"]
        command += ["--layers", ",".join(LAYERS), "--http-port", str(port)]
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAST_SESSIONS, "MSM_TEST_LEDGER": str(ledger)},
            cwd=REPO,
        )


@dataclass(frozen=True)
class Observed:
    topology: Topology
    worker: HttpLayersWorker
    publisher: Publisher
    url: str  # http://127.0.0.1:<port>
    directory: Path

    def publish(self, tag: str, sizes: list[int]) -> None:
        for i, size in enumerate(sizes):
            payload = {"id": f"{tag}-{i}", "size": size, "colour": "red"}
            self.publisher.publish(EVENT, payload, wait=False)
        self.publisher.flush()

    def status(self) -> dict[str, Any]:
        return get_json(f"{self.url}/status.json")

    def wait_status(
        self, done: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 45.0
    ) -> dict[str, Any]:
        return wait_for(self.status, done, what, timeout_s)


def get_json(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (local URL)
        data = json.load(response)
    assert isinstance(data, dict)
    return data


def wait_for(
    read: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    what: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Calls ``read`` until ``done`` holds for its answer; fails with the last answer."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | Exception = {}
    while time.monotonic() < deadline:
        try:
            last = read()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if done(last):
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


def done_counts(status: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["done"] for s in status["subscribers"]}


@contextmanager
def observed_worker(directory: Path, bootstrap: str, admin: AdminClient) -> Iterator[Observed]:
    """A fresh namespace and a five-layer worker serving HTTP; stopped cleanly afterwards."""
    with applied_topology(directory, DOCUMENT, bootstrap, admin) as topology:
        port = free_port()
        worker = HttpLayersWorker(topology, directory / "worker.log", port, directory / "ledger")
        with worker:
            publisher = Publisher(topology)
            try:
                print(f"worker ready {worker.wait_ready(90):.2f} s after launch")
                url = f"http://127.0.0.1:{port}"
                wait_for(lambda: get_json(f"{url}/healthz"), bool, "the HTTP server", 30)
                yield Observed(topology, worker, publisher, url, directory)
            finally:
                publisher.close()
            code = worker.stop()
            assert code == 0, worker.tail()
