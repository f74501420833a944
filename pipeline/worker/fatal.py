"""Agents that die loudly.

Faust logs an exception raised inside an agent and carries on without it: the worker looks
alive while a layer is dead. Every MSM agent body runs under :func:`fatal`, which crashes the
whole worker (non-zero exit) instead, so a supervisor restarts it and nothing waits silently.
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
                log.critical("agent %s crashed, stopping the worker: %r", name, exc)
                await app.crash(exc)

        return agent

    return decorate
