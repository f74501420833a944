"""Handlers for the five-layer end-to-end tests, run inside a ``msm worker`` subprocess.

Each run appends one JSON line to the file named by ``MSM_TEST_LEDGER``: which task, which
attempt, when it started and ended, and how many of its subscriber's runs overlapped it, so the
test process can check fan-out, limits, order and retries from the outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Mapping

from pipeline.handler import TaskMeta

_running: Counter[str] = Counter()


def _write(meta: TaskMeta, payload: Mapping[str, object], start: float, **extra: object) -> None:
    line = {
        "task": meta.task_id,
        "sub": meta.subscriber,
        "event": meta.event_id,
        "attempt": meta.attempt,
        "key": meta.key,
        "payload": {k: v for k, v in payload.items() if isinstance(v, str | int)},
        "start": start,
        "end": time.time(),
        **extra,
    }
    with open(os.environ["MSM_TEST_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


async def record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write(meta, payload, time.time())


async def slow_record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Takes 50 ms and notes how many runs of its subscriber overlapped it."""
    start = time.time()
    _running[meta.subscriber] += 1
    peak = _running[meta.subscriber]
    try:
        await asyncio.sleep(0.05)
        peak = max(peak, _running[meta.subscriber])
    finally:
        _running[meta.subscriber] -= 1
    _write(meta, payload, start, overlapping=peak)


async def hang(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write(meta, payload, time.time(), hung=True)
    await asyncio.sleep(3600)


def fail_twice(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Sync on purpose (runs in the thread pool): fails attempts 1 and 2, then succeeds."""
    _write(meta, payload, time.time(), ok=meta.attempt >= 3)
    if meta.attempt < 3:
        raise RuntimeError(f"flaky, attempt {meta.attempt}")


async def always_fail(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write(meta, payload, time.time(), ok=False)
    raise RuntimeError("always")


async def reject(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write(meta, payload, time.time(), ok=False)
    raise ValueError("never valid")


async def fail_seq_3_once(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Ordered subscriber: the event with seq 3 fails its first attempt."""
    fails = str(payload.get("key", "")).endswith("-3") and meta.attempt == 1
    _write(meta, payload, time.time(), ok=not fails)
    if fails:
        raise RuntimeError("seq 3 fails once")
