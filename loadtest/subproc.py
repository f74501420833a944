"""Child processes of a measurement: output to a log file, always stopped on the way out.

Everything crosses as argv and environment strings (no pickling, no shared objects), and a
child that dies early is reported with the tail of its log instead of a silent hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Proc:
    """``python -m <module> <args>``; ``long_running`` ones must not exit before ``stop``."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        long_running: bool = True,
    ) -> None:
        self.log_path = log_path
        self.long_running = long_running
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO,
        )

    def check(self) -> None:
        """Raise (with the log's tail) if the child failed, or ended though it should not."""
        code = self.proc.poll()
        if code is not None and (code != 0 or self.long_running):
            raise RuntimeError(f"{self.log_path.name}: exited {code}\n{self.tail()}")

    def wait(self, timeout_s: float) -> None:
        """Wait for a finite child to end; fails if it does not end well."""
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{self.log_path.name}: still running after {timeout_s} s") from None
        self.long_running = False
        self.check()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (a clean stop: flush, commit, leave the group); SIGKILL if that hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(30)
        self._log.close()
        return code

    def tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
