"""Incremental reading of the handler ledgers while a benchmark runs.

``ledger.read_runs`` rereads every file; polled twice a second during a long run that would cost
the harness a core it shares with the system under test. This keeps an offset per file, parses
only complete new lines, and indexes runs by the plan's id prefix (``e<seed>``), first run of an
id only (at-least-once systems may run an event twice).
"""

from __future__ import annotations

from pathlib import Path

from loadtest.ledger import Run


class LedgerTail:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        self._by_prefix: dict[str, dict[str, Run]] = {}
        self.duplicates = 0

    def poll(self) -> None:
        """Reads what was appended since the last poll."""
        for path in sorted(self.directory.glob("*.ledger")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
            if end:
                self._offsets[path] = offset + end
                self._add(data[:end].decode("ascii", "replace"))

    def _add(self, text: str) -> None:
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) < 5:
                continue
            try:
                run = Run(parts[0], int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4]))
            except ValueError:
                continue
            if len(parts) > 5:
                run = Run(
                    run.event_id, run.sent_ns, run.started_ns, run.finished_ns, run.pid, parts[5]
                )
            runs = self._by_prefix.setdefault(run.event_id.split("-", 1)[0], {})
            if run.event_id in runs:
                self.duplicates += 1
            else:
                runs[run.event_id] = run

    def runs(self, prefix: str) -> list[Run]:
        """Runs of events whose id starts with ``<prefix>-`` (first run of each)."""
        return list(self._by_prefix.get(prefix, {}).values())

    def count(self, prefix: str) -> int:
        return len(self._by_prefix.get(prefix, {}))
