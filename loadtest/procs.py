"""``msm worker`` subprocesses for a benchmark (the harness may not import from tests/).

Output goes to a log file in the run's work dir, so a failed run can be read afterwards; a
worker that exits before it is ready raises with the tail of that log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MSM = Path(sys.executable).parent / "msm"
READY_LINE = "[^Worker]: Ready"
# A killed worker keeps its partitions until its session expires: keep that short.
FAST_SESSIONS = {
    "MSM_FAUST_BROKER_SESSION_TIMEOUT": "6",
    "MSM_FAUST_BROKER_HEARTBEAT_INTERVAL": "1",
}


class WorkerProcess:
    """``msm --topology <path> worker --no-http [--layers ...]`` (``--http-port N`` instead of
    ``--no-http`` when ``http_port`` is given: the HTTP ingress, with the frontend layer)."""

    def __init__(
        self,
        topology_path: Path,
        log_path: Path,
        *,
        layers: str | None = None,
        env: Mapping[str, str] | None = None,
        log_level: str = "INFO",
        http_port: int | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        http = ["--no-http"] if http_port is None else ["--http-port", str(http_port)]
        command = [str(MSM), "--topology", str(topology_path), "worker", *http]
        command += ["--log-level", log_level]
        if layers:
            command += ["--layers", layers]
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAST_SESSIONS, **(env or {})},
            cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while READY_LINE not in self.log_path.read_text("utf-8", "replace"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"msm worker exited {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"msm worker not ready in {timeout_s:.0f} s:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM (flushes the handler ledger at exit); SIGKILL if that hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(30)
        self._log.close()
        return code
