"""UUIDv7 event ids: valid v7, unique, and in creation order even within one millisecond."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pipeline.client import ids
from pipeline.client.ids import event_id_time, new_event_id, uuid7


def test_ids_are_rfc9562_version_7() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_ids_sort_in_creation_order_within_a_millisecond() -> None:
    ids = [new_event_id() for _ in range(20_000)]  # far more than one per millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_from_several_threads_are_unique() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_event_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in per_thread for i in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in per_thread)


def test_id_time_is_the_creation_time_not_pushed_ahead() -> None:
    before = datetime.now(UTC)
    ids = [new_event_id() for _ in range(5_000)]
    after = datetime.now(UTC)
    last = event_id_time(ids[-1])
    assert last is not None
    # uuid6.uuid7 would be ~5 s ahead here: it adds a millisecond per id within a millisecond.
    assert before - timedelta(milliseconds=1) <= last <= after + timedelta(milliseconds=1)


def test_id_time_of_foreign_ids_is_none() -> None:
    assert event_id_time(str(uuid.uuid4())) is None
    assert event_id_time("order-42") is None


def test_ids_stay_ordered_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    base = 1_000_000_000_000_000_000  # ns; the module state is restored after the test
    readings = iter([base, base - 1_000_000_000, base])
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_last_random", 0)
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: next(readings)))
    made = [new_event_id() for _ in range(3)]
    assert made == sorted(made)
    assert len(set(made)) == 3
    assert {event_id_time(i) for i in made} == {datetime.fromtimestamp(base / 1e9, tz=UTC)}
