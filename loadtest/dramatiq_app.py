"""The Dramatiq worker side of the peers scenario: one actor running the shared no-op handler.

RedisBroker on the harness's throwaway redis-server (``MSM_BENCH_REDIS_URL``), no results
middleware, Dramatiq's default middleware otherwise (age/time limits, retries) and its default
JSON encoder; the harness runs ``dramatiq loadtest.dramatiq_app --processes 2 --threads 8``,
which is Dramatiq's own default on a 2-core machine (one process per core, 8 threads each).
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from loadtest.handlers import noop_sync
from loadtest.peer_boot import open_ledger

URL_ENV = "MSM_BENCH_REDIS_URL"
BROKER_URL = os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")
QUEUE_KEYS = ("dramatiq:default",)  # Redis list of waiting message ids
MESSAGE_KEYS = ("dramatiq:default.msgs",)  # hash: message id -> encoded message


class LedgerBoot(Middleware):
    """Opens the ledger before the worker's threads start (see :mod:`loadtest.peer_boot`)."""

    def before_worker_boot(self, broker: object, worker: object) -> None:
        open_ledger()


broker = RedisBroker(url=BROKER_URL)  # type: ignore[no-untyped-call]
broker.add_middleware(LedgerBoot())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop(payload: dict[str, Any]) -> None:
    noop_sync(payload)
