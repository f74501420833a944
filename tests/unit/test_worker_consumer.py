"""The worker's consumer: fetch pacing, and an eager ``wait_first`` with mode's outcomes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from mode.services import WaitResults

from pipeline.topology import load_topology
from pipeline.worker.app import create_app
from pipeline.worker.consumer import DEFAULT_FETCH_WAIT_MS, Fetch, _PacedThread, eager_first
from tests.fixtures.topologies import minimal, write_topology


async def race(*aws: Any) -> WaitResults:
    """mode's wait_first, minus the service's own events: first of the awaitables to finish."""
    futures = {aw: asyncio.ensure_future(aw) for aw in aws}
    done, pending = await asyncio.wait(futures.values(), return_when=asyncio.FIRST_COMPLETED)
    for fut in pending:
        fut.cancel()
    winners = [aw for aw, fut in futures.items() if fut in done]
    return WaitResults(winners, [futures[w].result() for w in winners], False)


async def test_a_callback_that_never_waits_runs_inline_and_the_other_never_starts() -> None:
    started: list[str] = []

    async def callback() -> str:
        return "delivered"

    async def suspend() -> None:
        started.append("suspend")

    tasks_before = len(asyncio.all_tasks())
    cb = callback()
    result = await eager_first((cb, suspend()), race)
    assert result == WaitResults([cb], ["delivered"], False)
    assert started == []
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_callback_that_waits_finishes_as_a_task_with_its_awaits_intact() -> None:
    room = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def callback() -> str:
        steps.append("before")
        got = await room  # a full buffer, until there is room
        await asyncio.sleep(0)  # a bare yield on the way
        steps.append(f"after {got}")
        return "delivered"

    async def suspend() -> None:
        await asyncio.sleep(10)

    asyncio.get_running_loop().call_later(0.01, room.set_result, "room")
    cb = callback()
    result = await eager_first((cb, suspend()), race)
    assert result.done == [cb]
    assert result.results == ["delivered"]
    assert steps == ["before", "after room"]


async def test_the_other_wins_when_the_callback_is_stuck_and_the_callback_is_cancelled() -> None:
    never = asyncio.get_running_loop().create_future()
    cleanup: list[str] = []

    async def callback() -> None:
        try:
            await never
        except asyncio.CancelledError:
            cleanup.append("cancelled inside")
            raise

    async def suspend() -> str:
        await asyncio.sleep(0.01)
        return "suspended"

    other = suspend()
    result = await eager_first((callback(), other), race)
    assert result.done == [other]
    assert result.results == ["suspended"]
    await asyncio.sleep(0)
    assert cleanup == ["cancelled inside"], "the callback saw its cancellation, as a task would"


async def test_errors_reach_the_caller_whether_raised_inline_or_after_a_wait() -> None:
    failed = asyncio.get_running_loop().create_future()

    async def inline() -> None:
        raise ValueError("at once")

    async def later() -> None:
        await failed

    async def suspend() -> None:
        await asyncio.sleep(10)

    with pytest.raises(ValueError, match="at once"):
        await eager_first((inline(), suspend()), race)
    asyncio.get_running_loop().call_later(0.01, failed.set_exception, KeyError("later"))
    with pytest.raises(KeyError):
        await eager_first((later(), suspend()), race)


def test_fetch_pacing_batches_with_a_wait_and_answers_at_once_without() -> None:
    assert (Fetch(25).max_wait_ms, Fetch(25).min_bytes) == (25, 1 << 20)
    assert (Fetch(0).max_wait_ms, Fetch(0).min_bytes) == (100, 1), "idle fetches held 100 ms"
    with pytest.raises(ValueError, match="0-10000"):
        Fetch(-1)


def test_each_apps_kafka_consumer_is_built_with_its_fetch_pacing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = SimpleNamespace(_fetch_max_wait_ms=1500, _fetch_min_bytes=1)  # faust's choice
    monkeypatch.setattr(
        driver.AIOKafkaConsumerThread, "_create_worker_consumer", lambda _self, _t: built
    )
    thread = object.__new__(_PacedThread)  # no consumer, no loop: only the factory is tested
    thread.app = cast(Any, SimpleNamespace(msm_fetch=Fetch(35)))
    client = thread._create_worker_consumer(None)
    assert (client._fetch_max_wait_ms, client._fetch_min_bytes) == (35, 1 << 20)


def test_the_worker_app_names_its_fetch_pacing(tmp_path: Path) -> None:
    topology = load_topology(write_topology(tmp_path, minimal()))
    assert create_app(topology, "frontend", fetch=Fetch(35)).msm_fetch == Fetch(35)
    assert create_app(topology, "flow").msm_fetch == Fetch(DEFAULT_FETCH_WAIT_MS)


async def test_a_commit_whose_partitions_were_all_revoked_is_skipped_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """faust would pass aiokafka ``{}`` (ValueError: a worker crash); seen in a rebalance storm."""
    committed: list[dict[Any, int]] = []

    async def faust_commit(_self: Any, offsets: dict[Any, int]) -> bool:
        committed.append(dict(offsets))
        return True

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_commit", faust_commit)
    thread = object.__new__(_PacedThread)  # no consumer: only the guard is tested
    kept, revoked = TP("t", 0), TP("t", 1)
    thread.assignment = lambda: {kept}  # type: ignore[method-assign]
    assert await thread._commit({revoked: 5}) is False
    assert committed == []
    assert await thread._commit({kept: 3, revoked: 5}) is True
    assert committed == [{kept: 3, revoked: 5}]  # faust itself drops the revoked one
