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
from pipeline.worker.consumer import (
    DEFAULT_FETCH_WAIT_MS,
    EagerConsumer,
    Fetch,
    _PacedThread,
    eager_first,
)
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


async def test_a_batch_fetched_before_a_rebalance_is_dropped_not_taken_as_the_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The consumer thread fetched 389.., then the loop ran a revocation and the seek to the
    committed offset before taking the batch: it is dropped (faust would count 380..388 as
    acked and later drop them), and the re-read from 379 flows, even though its fetch began
    before the seek."""
    thread = SimpleNamespace(epoch=0, batch_epoch=0)
    batches = [[389, 390], [379, 380]]

    async def faust_getmany(_self: Any, timeout: float) -> Any:  # noqa: ASYNC109
        batch = batches.pop(0)
        thread.batch_epoch = thread.epoch  # stamped on the thread when the fetch returned
        if batches:
            thread.epoch += 2  # then a revocation and a seek, before the loop took it
        for offset in batch:
            yield TP("t", 0), SimpleNamespace(offset=offset)

    monkeypatch.setattr(driver.Consumer, "getmany", faust_getmany)
    consumer = object.__new__(EagerConsumer)  # no real thread: only the epoch check is tested
    consumer._thread = thread  # type: ignore[assignment]
    first = [m.offset async for _, m in consumer.getmany(1.0)]
    second = [m.offset async for _, m in consumer.getmany(1.0)]
    assert first == []
    assert second == [379, 380]


async def test_the_thread_numbers_revocations_and_seeks_and_stamps_each_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fetched(*_: Any, **__: Any) -> dict[str, list[int]]:
        return {"t": [1]}

    async def revoked(_self: Any, _revoked: Any) -> None:
        return None

    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "_fetch_records", fetched)
    monkeypatch.setattr(driver.AIOKafkaConsumerThread, "on_partitions_revoked", revoked)
    thread = object.__new__(_PacedThread)
    assert await thread._fetch_records(None, None) == {"t": [1]}
    assert (thread.epoch, thread.batch_epoch) == (0, 0)
    await thread.on_partitions_revoked(set())
    assert (thread.epoch, thread.batch_epoch) == (1, 0)  # the batch in hand is now stale

    class _Aiokafka:
        async def seek_to_committed(self) -> dict[str, int]:
            return {"t": 379}

    async def call_thread(fn: Any) -> Any:
        return await fn()

    thread._ensure_consumer = lambda: _Aiokafka()  # type: ignore[method-assign]
    thread.call_thread = call_thread  # type: ignore[method-assign,assignment]
    assert await thread.seek_to_committed() == {"t": 379}
    assert thread.epoch == 2
    await thread._fetch_records(None, None)
    assert thread.batch_epoch == 2
