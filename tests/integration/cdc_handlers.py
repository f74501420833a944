"""Handlers for the CDC tests, run inside ``msm worker``: one JSON line per run in the file
named by ``MSM_TEST_LEDGER``, with the change's op, images and position."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping

from pipeline.handler import TaskMeta


def _write(meta: TaskMeta, payload: Mapping[str, object]) -> None:
    line = {
        "sub": meta.subscriber,
        "event": meta.event_id,
        "key": meta.key,
        "op": payload.get("op"),
        "before": payload.get("before"),
        "after": payload.get("after"),
        "lsn": payload.get("lsn"),
    }
    with open(os.environ["MSM_TEST_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line, default=str) + "\n")


async def record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    _write(meta, payload)


async def slow_record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """About 40 changes a second at concurrency 1: a subscriber that cannot keep up."""
    await asyncio.sleep(0.025)
    _write(meta, payload)
