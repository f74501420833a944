"""The checking handler both chaos subscribers run: record the execution, then "work".

The line is written before the work, so an execution cut short by a kill still counts: the
checker sees it, and its rerun, as the duplicate it is. The work (``MSM_CHAOS_WORK_MS``,
default 0) keeps tasks in flight long enough for a kill to land inside some.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping

from chaos.ledger import Execution, writer
from pipeline.handler import TaskMeta

WORK_ENV = "MSM_CHAOS_WORK_MS"


async def record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """``chaos.handlers:record``: one ledger line per execution, on disk before returning."""
    started = time.time_ns()
    execution = Execution(
        subscriber=meta.subscriber,
        event_id=meta.event_id,
        key=str(payload["key"]),
        seq=_int(payload["seq"]),
        attempt=meta.attempt,
        pid=os.getpid(),
        started_ns=started,
    )
    writer().write(execution)
    work_ms = float(os.environ.get(WORK_ENV, "0") or 0)
    if work_ms > 0:
        await asyncio.sleep(work_ms / 1000)


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value
