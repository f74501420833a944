"""The Celery worker side of the peers scenario: one task running the shared no-op handler.

Settings are what a typical user of Celery with Redis ends up with: the ``json`` serializer
only (never pickle across processes), no result backend (the harness reads the handler ledger,
not results), results ignored, and otherwise Celery's defaults: prefetch multiplier 4, early
acks (``task_acks_late`` off), prefork pool with one child per core (the harness passes
``--concurrency 2 --pool prefork`` explicitly on the 2-core bench machine).
The broker URL comes from ``MSM_BENCH_REDIS_URL`` (the harness's throwaway redis-server).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from loadtest.handlers import noop_sync
from loadtest.peer_boot import open_ledger

URL_ENV = "MSM_BENCH_REDIS_URL"
BROKER_URL = os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")
TASK = "loadtest.noop"
QUEUE_KEYS = ("celery",)  # Redis lists holding the default queue's waiting messages

app = Celery("loadtest", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    result_backend=None,
    task_ignore_result=True,
    worker_prefetch_multiplier=4,  # Celery's default, spelled out for the report
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _boot(**_: object) -> None:
    open_ledger()  # in each pool child, before its first task


@app.task(name=TASK)  # type: ignore[untyped-decorator]
def noop(payload: dict[str, Any]) -> None:
    noop_sync(payload)
