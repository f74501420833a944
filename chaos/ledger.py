"""Every handler execution, one line each, in the kernel before the handler returns.

The checker counts executions, so a line lost with a SIGKILLed worker would hide a duplicate or
invent a loss. Each process appends to ``<dir>/<pid>.ledger`` (the directory from
:data:`ENV`) with one ``os.write`` per line on an ``O_APPEND`` descriptor: no user-space buffer,
so once the handler returns the line belongs to the kernel, which a killed process cannot take
back. (A power cut could; an fsync per line would guard against nothing a chaos run does.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV = "MSM_CHAOS_LEDGER_DIR"
_SEP = "\t"


@dataclass(frozen=True)
class Execution:
    """One handler execution as it started (a retry or redelivery is another one)."""

    subscriber: str
    event_id: str
    key: str
    seq: int
    attempt: int
    pid: int
    started_ns: int

    def line(self) -> str:
        fields = (self.subscriber, self.event_id, self.key, self.seq, self.attempt, self.pid)
        return _SEP.join(str(f) for f in (*fields, self.started_ns)) + "\n"


def parse_line(line: str) -> Execution | None:
    """The execution on one ledger line; None for a line that is not one (never written whole
    by this module, but a ledger is evidence: a bad line is skipped, not fatal)."""
    parts = line.rstrip("\n").split(_SEP)
    if len(parts) != 7:
        return None
    sub, event_id, key, seq, attempt, pid, started = parts
    try:
        return Execution(sub, event_id, key, int(seq), int(attempt), int(pid), int(started))
    except ValueError:
        return None


class LedgerWriter:
    """Appends executions to ``<directory>/<pid>.ledger``; thread-safe (sync handlers)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        path = directory / f"{self.pid}.ledger"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, execution: Execution) -> None:
        data = memoryview(execution.line().encode("utf-8"))
        with self._lock:  # a short write's rest must follow it, not another thread's line
            while data:
                data = data[os.write(self._fd, data) :]


_writer: LedgerWriter | None = None
_making = threading.Lock()


def writer() -> LedgerWriter:
    """This process's writer, made on first use (a forked child makes its own file)."""
    global _writer
    with _making:
        if _writer is None or _writer.pid != os.getpid():
            directory = os.environ.get(ENV)
            if not directory:
                raise RuntimeError(f"{ENV} is not set: where should executions be recorded?")
            _writer = LedgerWriter(Path(directory))
        return _writer


class LedgerTail:
    """Reads every ``*.ledger`` under a directory incrementally, whole lines only.

    The harness polls while workers still write (and new workers add files), so each file's
    read position is kept and a line cut off at the end waits for its newline.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.executions: list[Execution] = []
        self.bad_lines = 0
        self._offsets: dict[Path, int] = {}

    def poll(self) -> list[Execution]:
        """The executions written since the last poll (also appended to ``executions``)."""
        new = list(self._read_new())
        self.executions.extend(new)
        return new

    def _read_new(self) -> Iterator[Execution]:
        for path in sorted(self.directory.glob("*.ledger")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            for line in chunk[:end].decode("utf-8", "replace").splitlines():
                execution = parse_line(line)
                if execution is None:
                    self.bad_lines += 1
                else:
                    yield execution
