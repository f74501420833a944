"""Agents die loudly, except on the way out: a failure while the worker stops is no crash."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.worker.fatal import fatal


class _App:
    def __init__(self, *, stopping: bool) -> None:
        self.should_stop = stopping
        self.crashed: list[BaseException] = []
        self.consumer = type("Consumer", (), {})()

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


async def _failing(_stream: Any) -> None:
    raise RuntimeError("producer not started")


async def test_an_agent_that_fails_while_running_crashes_the_worker_and_ends_commits() -> None:
    app = _App(stopping=False)
    await fatal(app, "release")(_failing)(None)
    assert [str(e) for e in app.crashed] == ["producer not started"]
    assert await app.consumer.commit({}) is False


async def test_an_agent_that_fails_while_the_worker_stops_is_no_crash_but_commits_end() -> None:
    app = _App(stopping=True)
    await fatal(app, "release")(_failing)(None)
    assert app.crashed == []
    assert await app.consumer.commit({}) is False


async def test_cancellation_passes_through() -> None:
    async def cancelled(_stream: Any) -> None:
        raise asyncio.CancelledError

    app = _App(stopping=False)
    with pytest.raises(asyncio.CancelledError):
        await fatal(app, "release")(cancelled)(None)
    assert app.crashed == []
