"""Handler-side records: one line per run (event id, intended send, started, finished, pid).

Handlers run in other processes (MSM workers, Celery and Dramatiq workers). Each process appends
to its own file under the directory named by ``MSM_BENCH_LEDGER_DIR`` (buffered, flushed
every 100 ms by a daemon thread and at exit), and the harness reads them all afterwards: no
shared state, no network, and a line is ~60 bytes, so writing costs little next to the work.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ENV = "MSM_BENCH_LEDGER_DIR"
FLUSH_S = 0.1


@dataclass(frozen=True)
class Run:
    event_id: str
    sent_ns: int  # intended send time
    started_ns: int
    finished_ns: int
    pid: int
    subscriber: str = ""


class LedgerWriter:
    """Appends runs to ``<dir>/<pid>.ledger``; thread-safe (sync handlers run in threads)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._file = (directory / f"{os.getpid()}.ledger").open("a", encoding="ascii")
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        atexit.register(self.flush)
        # The last runs before a pause would otherwise wait in the buffer for the next one.
        threading.Thread(target=self._flush_forever, name="ledger-flush", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()

    def record(self, event_id: str, sent_ns: int, started_ns: int, subscriber: str = "") -> None:
        line = f"{event_id} {sent_ns} {started_ns} {time.time_ns()} {os.getpid()} {subscriber}\n"
        with self._lock:
            self._lines.append(line)
            now = time.monotonic()
            if now - self._last >= FLUSH_S:
                self._write(now)

    def flush(self) -> None:
        with self._lock:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        if self._lines:
            self._file.write("".join(self._lines))
            self._file.flush()
            self._lines.clear()
        self._last = now


_writer: LedgerWriter | None = None
_making = threading.Lock()


def writer() -> LedgerWriter:
    """The process's writer, made on first use from :data:`ENV` (once, whatever the threads)."""
    global _writer
    if _writer is None:
        with _making:
            if _writer is None:
                _writer = LedgerWriter(Path(os.environ[ENV]))
    return _writer


def read_runs(directory: Path) -> list[Run]:
    return list(_parse(p.read_text(encoding="ascii") for p in sorted(directory.glob("*.ledger"))))


def _parse(texts: Iterable[str]) -> Iterator[Run]:
    for text in texts:
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) < 5:
                continue  # a line cut by a kill
            sub = parts[5] if len(parts) > 5 else ""
            yield Run(parts[0], int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]), sub)
