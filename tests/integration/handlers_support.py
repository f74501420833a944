"""Handlers for the execution layer's tests, run inside a ``msm worker`` subprocess.

Every run appends JSON lines to the file named by ``MSM_TEST_LEDGER`` (a "start" line before the
work, an "end" line after it, with the worker's pid and how many runs of the subscriber were
running at once), so the test process counts executions from the outside, across restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping

from pipeline.handler import DeadLetter, Retry, TaskMeta

_running: Counter[str] = Counter()
_lock = threading.Lock()


def _write(phase: str, meta: TaskMeta, **extra: object) -> None:
    line = {
        "phase": phase,
        "task": meta.task_id,
        "sub": meta.subscriber,
        "attempt": meta.attempt,
        "pid": os.getpid(),
        "at": time.time(),
        **extra,
    }
    with _lock, open(os.environ["MSM_TEST_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


async def slow(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Takes ``size`` ms; notes how many runs of its subscriber overlap it."""
    _running[meta.subscriber] += 1
    _write("start", meta, running=_running[meta.subscriber])
    try:
        await asyncio.sleep(int(str(payload["size"])) / 1000)
    finally:
        _running[meta.subscriber] -= 1
    _write("end", meta)


def mixed(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Sync (a thread per run): what it does depends on the payload id's prefix."""
    what = str(payload["id"]).split("-")[0]
    _write("start", meta, what=what)
    if what == "fail":
        raise RuntimeError(f"boom {payload['id']}")
    if what == "retry":
        raise Retry(delay=7.5)
    if what == "dead":
        raise DeadLetter("no way")
    if what == "hang":
        time.sleep(3)
    if what == "flaky" and meta.attempt < 3:
        raise RuntimeError(f"flaky attempt {meta.attempt}")
    _write("end", meta)


async def stable(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write("start", meta, version="stable")


async def canary_fails(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write("start", meta, version="canary")
    raise RuntimeError("canary bug")
