"""A handler for the multi-worker rate-limit test, run inside ``msm worker`` subprocesses.

Each run appends one JSON line to the file named by ``MSM_TEST_LEDGER`` with its wall-clock
start and the worker's pid, so the test can measure the rate summed over every worker and see
that each worker took part. Lines are short single writes in append mode: the workers' lines
never interleave.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

from pipeline.handler import TaskMeta


def _append(line: Mapping[str, object]) -> None:
    with open(os.environ["MSM_TEST_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


async def record(payload: Mapping[str, object], meta: TaskMeta) -> None:
    line = {
        "task": meta.task_id,
        "key": meta.key,
        "attempt": meta.attempt,
        "start": time.time(),
        "pid": os.getpid(),
    }
    _append(line)
