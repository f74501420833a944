"""Handlers by dotted path, run async or in a thread, with a timeout they cannot escape."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from pipeline.agents.base import LayerContext
from pipeline.agents.execution import register
from pipeline.agents.execution_handlers import (
    HandlerExit,
    HandlerTimeout,
    Runner,
    is_async,
    load_handler,
)
from pipeline.agents.execution_records import task_meta
from pipeline.errors import ConfigError
from pipeline.handler import DeadLetter, Retry, TaskMeta
from pipeline.topology import load_topology
from tests.fixtures.topologies import minimal, write_topology

META = task_meta({"msm.id": b"e1"}, "sub", 1)
Payload = Mapping[str, object]
RELEASE = threading.Event()


async def async_ok(payload: Payload, meta: TaskMeta) -> None:
    await asyncio.sleep(0)


def sync_ok(payload: Payload, meta: TaskMeta) -> None:
    assert threading.current_thread() is not threading.main_thread()


async def async_fails(payload: Payload, meta: TaskMeta) -> None:
    raise ValueError(f"bad {payload['x']} for {meta.task_id}")


def sync_fails(payload: Payload, meta: TaskMeta) -> None:
    raise Retry(delay=2.5)


async def async_hangs(payload: Payload, meta: TaskMeta) -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:  # swallowed: it goes on for a while, its caller must not
        await asyncio.sleep(0.5)


def sync_hangs(payload: Payload, meta: TaskMeta) -> None:
    RELEASE.wait(10)


def sync_exits(payload: Payload, meta: TaskMeta) -> None:
    raise SystemExit(3)


async def async_exits(payload: Payload, meta: TaskMeta) -> None:
    raise KeyboardInterrupt


async def async_cancels_itself(payload: Payload, meta: TaskMeta) -> None:
    raise asyncio.CancelledError


def sync_cancels(payload: Payload, meta: TaskMeta) -> None:
    raise asyncio.CancelledError


class Callable:
    async def __call__(self, payload: Payload, meta: TaskMeta) -> None:
        return None

    @staticmethod
    def static(payload: Payload, meta: TaskMeta) -> None:
        return None


callable_object = Callable()
NOT_A_FUNCTION = 42
HERE = __name__


def test_load_by_dotted_path() -> None:
    assert load_handler(f"{HERE}:async_ok", "s") is async_ok
    assert load_handler(f"{HERE}:Callable.static", "s") is Callable.static
    assert load_handler("examples.handlers:cleanup", "s").__name__ == "cleanup"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tests.unit.no_such_module:f", "no module 'tests.unit.no_such_module'"),
        ("nosuchpackage.mod:f", "no module 'nosuchpackage'"),
        (f"{HERE}:missing", "has no attribute 'missing'"),
        (f"{HERE}:NOT_A_FUNCTION", "not a function"),
        (f"{HERE}", "expected 'package.module:function'"),
    ],
)
def test_a_wrong_path_is_a_config_error_naming_subscriber_and_path(path: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_handler(path, "mailer")
    assert "'mailer'" in str(err.value)
    assert path in str(err.value)
    assert says in str(err.value)


def test_async_detection() -> None:
    assert is_async(async_ok)
    assert is_async(callable_object)
    assert not is_async(sync_ok)
    assert not is_async(Callable.static)


async def test_successes_and_failures_come_back_as_they_are() -> None:
    runner = Runner("s", timeout_s=5)
    await runner.run(async_ok, {}, META)
    await runner.run(sync_ok, {}, META)
    await runner.run(callable_object, {}, META)
    with pytest.raises(ValueError, match="bad 7 for e1/sub"):
        await runner.run(async_fails, {"x": 7}, META)
    with pytest.raises(Retry) as err:
        await runner.run(sync_fails, {}, META)
    assert err.value.delay is not None
    assert err.value.delay.total_seconds() == 2.5
    assert runner.threads == 0


async def test_an_async_handler_that_ignores_cancellation_still_times_out() -> None:
    runner = Runner("s", timeout_s=0.05)
    started = time.monotonic()
    with pytest.raises(HandlerTimeout, match=r"no result within 0\.05s"):
        await runner.run(async_hangs, {}, META)
    assert time.monotonic() - started < 0.4
    await asyncio.sleep(0.6)  # let it end before the test's loop closes


async def test_a_hung_thread_is_abandoned_and_the_next_task_runs() -> None:
    RELEASE.clear()
    runner = Runner("s", timeout_s=0.05)
    for _ in range(3):
        with pytest.raises(HandlerTimeout):
            await runner.run(sync_hangs, {}, META)
    assert runner.abandoned == 3
    assert runner.threads == 3
    await runner.run(sync_ok, {}, META)  # not queued behind the hung ones
    RELEASE.set()
    for _ in range(100):
        if runner.threads == 0:
            break
        await asyncio.sleep(0.01)
    assert runner.threads == 0


async def test_exit_requests_fail_the_task_not_the_worker() -> None:
    runner = Runner("s", timeout_s=5)
    with pytest.raises(HandlerExit, match="SystemExit"):
        await runner.run(sync_exits, {}, META)
    with pytest.raises(HandlerExit, match="KeyboardInterrupt"):
        await runner.run(async_exits, {}, META)
    with pytest.raises(HandlerExit, match="cancelled"):
        await runner.run(async_cancels_itself, {}, META)
    with pytest.raises(HandlerExit, match="CancelledError"):
        await runner.run(sync_cancels, {}, META)


async def test_cancelling_the_run_cancels_an_async_handler() -> None:
    runner = Runner("s", timeout_s=5)
    started = asyncio.Event()
    finished: list[str] = []

    async def waits(payload: Payload, meta: TaskMeta) -> None:
        started.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            finished.append("cancelled")
            raise

    run = asyncio.ensure_future(runner.run(waits, {}, META))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0)
    assert finished == ["cancelled"]


def test_handler_exceptions() -> None:
    assert Retry().retriable
    assert Retry().delay is None
    assert Retry(1).delay is not None
    assert not DeadLetter("gone").retriable
    assert str(DeadLetter("gone")) == "gone"
    with pytest.raises(ValueError, match="not negative"):
        Retry(-1)


def test_a_wrong_handler_stops_the_layer_at_registration(tmp_path: Path) -> None:
    doc = minimal()
    doc["subscribers"]["thumbnailer"]["handler"] = "examples.handlers:no_such_handler"
    topology = load_topology(write_topology(tmp_path, doc))
    with pytest.raises(ConfigError, match=r"'thumbnailer'.*examples\.handlers:no_such_handler"):
        register(object(), LayerContext(topology))  # fails before the app is touched
