"""Agents that die loudly.

Faust logs an exception raised inside an agent and carries on without it: the worker looks
alive while a layer is dead. Every MSM agent body runs under :func:`fatal`, which crashes the
whole worker (non-zero exit) instead, so a supervisor restarts it and nothing waits silently.

A crash also ends offset commits for good. Faust acks an event whose processing raised (an
auto-acked stream acks in its ``finally``) and would commit it on the way down, so the event
that crashed the worker would never be seen again. Without further commits everything not yet
committed is redelivered after the restart: duplicates, never a loss (at least once).

An agent that fails while its worker is already stopping (a task still routing when the
producer has stopped: ``NotReady``) is not a crash: the worker is on its way out anyway, and
exiting non-zero after a clean SIGTERM would look like a failure to a supervisor (seen in
the rebalance-storm chaos scenario). Commits still end, so what it was doing is redelivered.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

AgentFun = Callable[[Any], Awaitable[None]]


def fatal(app: Any, name: str) -> Callable[[AgentFun], AgentFun]:
    def decorate(fun: AgentFun) -> AgentFun:
        @functools.wraps(fun)
        async def agent(stream: Any) -> None:
            try:
                await fun(stream)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                stop_committing(app)
                if getattr(app, "should_stop", False):
                    log.info("agent %s ended as the worker stops: %r", name, exc)
                    return
                log.critical("agent %s crashed, stopping the worker: %r", name, exc)
                await app.crash(exc)

        return agent

    return decorate


def stop_committing(app: Any) -> None:
    """Make every later offset commit of ``app``'s consumer a no-op (see the module doc)."""

    async def refuse(*_args: Any, **_kwargs: Any) -> bool:
        return False

    # Every commit path in Faust (periodic, on revoke, on stop, on task error) goes through
    # Consumer.commit; the instance attribute shadows the method.
    app.consumer.commit = refuse
