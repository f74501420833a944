"""The one no-op handler every system runs: note when it started and finished, nothing else."""

from __future__ import annotations

import time
from collections.abc import Mapping

from loadtest.ledger import writer
from pipeline.handler import TaskMeta


async def noop(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """MSM's handler (execution layer)."""
    started = time.time_ns()
    writer().record(str(payload["id"]), int(payload["sent_ns"]), started, meta.subscriber)  # type: ignore[call-overload]


def noop_sync(payload: Mapping[str, object], subscriber: str = "") -> None:
    """The same for peers whose workers call plain functions (Celery, Dramatiq)."""
    started = time.time_ns()
    writer().record(str(payload["id"]), int(payload["sent_ns"]), started, subscriber)  # type: ignore[call-overload]
