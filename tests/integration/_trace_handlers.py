"""A handler for ``test_worker_http``, run inside the ``msm worker`` subprocess: it writes
the traceparent it was given to ``MSM_TEST_LEDGER`` and logs a line (which should carry the
trace id)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

from pipeline.handler import TaskMeta

log = logging.getLogger("tests.trace_handler")


def traced(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """Sync on purpose: its thread must see the task's log context too."""
    log.info("trace handler ran for %s", payload.get("id"))
    line = {"event": meta.event_id, "traceparent": meta.traceparent, "id": payload.get("id")}
    with open(os.environ["MSM_TEST_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")
