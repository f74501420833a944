"""Dedup: done task ids within the window, loaded per partition before its first task runs."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.agents.execution_dedup import DoneLoader, DoneSet, Entries
from pipeline.errors import KafkaUnavailableError


def test_done_within_the_window_only() -> None:
    done = DoneSet(window_ms=1000)
    done.add(0, "a/s", 5000)
    assert done.finished_at(0, "a/s", 5500) == 5000
    assert done.finished_at(0, "a/s", 6000) == 5000
    assert done.finished_at(0, "a/s", 6001) is None
    assert done.finished_at(1, "a/s", 5500) is None, "by partition"
    assert done.finished_at(0, "b/s", 5500) is None


def test_latest_finish_wins_and_prune_forgets_old() -> None:
    done = DoneSet(window_ms=1000)
    done.add(0, "a/s", 5000)
    done.merge(0, {"a/s": 4000, "b/s": 3000})
    assert done.finished_at(0, "a/s", 5000) == 5000
    assert len(done) == 2
    assert done.prune(now_ms=4500) == 1
    assert len(done) == 1
    done.drop(0)
    assert len(done) == 0


class FakeRead:
    def __init__(self, data: Entries, failures: int = 0) -> None:
        self.data = data
        self.calls: list[list[int]] = []
        self.failures = failures
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, partitions: list[int]) -> Entries:
        self.calls.append(partitions)
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise KafkaUnavailableError("broker away")
        return {p: dict(self.data.get(p, {})) for p in partitions}


async def test_prefetch_reads_all_assigned_partitions_at_once() -> None:
    done = DoneSet(10_000)
    read = FakeRead({0: {"a/s": 1}, 2: {"c/s": 3}})
    loader = DoneLoader(done, read)
    loader.prefetch([2, 0, 1])
    await loader.ensure(0)
    await loader.ensure(2)
    await loader.ensure(1)
    assert read.calls == [[0, 1, 2]]
    assert done.finished_at(0, "a/s", 10) == 1
    assert done.finished_at(2, "c/s", 10) == 3
    assert loader.loaded(1)


async def test_tasks_wait_for_their_partition() -> None:
    done = DoneSet(10_000)
    read = FakeRead({0: {"a/s": 1}})
    read.gate.clear()
    loader = DoneLoader(done, read)
    waiter = asyncio.ensure_future(loader.ensure(0))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    assert not loader.loaded(0)
    read.gate.set()
    await waiter
    assert done.finished_at(0, "a/s", 10) == 1


async def test_a_failed_read_is_retried() -> None:
    done = DoneSet(10_000)
    read = FakeRead({0: {"a/s": 1}}, failures=2)
    loader = DoneLoader(done, read, retry_s=0.001)
    await asyncio.wait_for(loader.ensure(0), 5)
    assert len(read.calls) == 3
    assert done.finished_at(0, "a/s", 10) == 1


async def test_revoked_partitions_are_read_again_on_the_next_assignment() -> None:
    done = DoneSet(10_000)
    read = FakeRead({0: {"a/s": 1}})
    loader = DoneLoader(done, read)
    await loader.ensure(0)
    loader.forget([0])
    assert done.finished_at(0, "a/s", 10) is None
    read.data[0]["b/s"] = 2  # written meanwhile by the partition's other owner
    await loader.ensure(0)
    assert done.finished_at(0, "b/s", 10) == 2
    assert read.calls == [[0], [0]]


async def test_a_cancelled_waiter_does_not_cancel_the_read() -> None:
    read = FakeRead({})
    read.gate.clear()
    loader = DoneLoader(DoneSet(1), read)
    waiter = asyncio.ensure_future(loader.ensure(3))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    read.gate.set()
    await loader.ensure(3)
    assert read.calls == [[3]]
    await loader.close()


async def test_generation_changes_on_revocation() -> None:
    loader = DoneLoader(DoneSet(1), FakeRead({}))
    assert loader.generation(0) == 0
    loader.forget([0, 1])
    assert (loader.generation(0), loader.generation(1), loader.generation(2)) == (1, 1, 0)
