"""The in-memory due queue and the commit positions it holds back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.agents.scheduling import CommitTracker, DueQueue, OffsetOrderError


def test_due_queue_pops_only_what_is_due_in_due_then_push_order() -> None:
    q: DueQueue[str] = DueQueue()
    for due, item in [(30, "c"), (10, "a"), (20, "b1"), (20, "b2"), (40, "d")]:
        q.push(due, item)
    assert len(q) == 5
    assert q.next_due_ms() == 10
    assert q.pop_due(9) == []
    assert q.pop_due(20) == ["a", "b1", "b2"]
    assert q.next_due_ms() == 30
    assert len(q) == 2
    assert q.pop_due(100) == ["c", "d"]
    assert q.next_due_ms() is None
    assert len(q) == 0


def test_due_queue_holds_items_that_do_not_compare() -> None:
    q: DueQueue[dict[str, int]] = DueQueue()
    q.push(5, {"x": 1})
    q.push(5, {"x": 2})
    assert q.pop_due(5) == [{"x": 1}, {"x": 2}]


def test_discard_removes_the_picked_items_and_keeps_order() -> None:
    q: DueQueue[tuple[int, int]] = DueQueue()  # (partition, offset)
    for due, item in [(3, (0, 1)), (1, (1, 7)), (2, (0, 2)), (4, (1, 8))]:
        q.push(due, item)
    assert q.discard(lambda item: item[0] == 1) == [(1, 7), (1, 8)]
    assert list(q) == [(2, (0, 2)), (3, (0, 1))]
    assert q.pop_due(10) == [(0, 2), (0, 1)]


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(0, 1000)),
            st.tuples(st.just("pop"), st.integers(0, 1000)),
        ),
        max_size=200,
    )
)
def test_due_queue_matches_a_sorted_list(ops: list[tuple[str, int]]) -> None:
    q: DueQueue[int] = DueQueue()
    model: list[tuple[int, int]] = []  # (due, push number)
    for n, (op, t) in enumerate(ops):
        if op == "push":
            q.push(t, n)
            model.append((t, n))
        else:
            due = sorted(m for m in model if m[0] <= t)
            assert q.pop_due(t) == [item for _, item in due], "nothing early, nothing left behind"
            model = [m for m in model if m[0] > t]
        assert len(q) == len(model)
        assert q.next_due_ms() == min((d for d, _ in model), default=None)


def test_commit_position_stops_at_the_oldest_open_offset() -> None:
    c: CommitTracker[int] = CommitTracker()
    assert c.committable(0) is None
    for offset in (10, 11, 12, 14):  # 13 is a gap, e.g. a transaction marker
        c.take(0, offset)
    assert c.committable(0) == 10, "nothing completed yet: the next read is 10"
    assert c.complete(0, 11)
    assert c.complete(0, 14)
    assert c.committable(0) == 10, "10 is held in memory: committing past it would lose it"
    assert c.complete(0, 10)
    assert c.committable(0) == 12
    assert c.open_count(0) == 1
    assert c.complete(0, 12)
    assert c.committable(0) == 15, "all done: commit after the highest offset taken"


def test_completing_twice_or_unknown_offsets_changes_nothing() -> None:
    c: CommitTracker[str] = CommitTracker()
    c.take("p", 0)
    assert c.complete("p", 0)
    assert not c.complete("p", 0)
    assert not c.complete("p", 5)
    assert not c.complete("other", 0)
    assert c.committable("p") == 1


@pytest.mark.parametrize("offset", [4, 5, -1])
def test_taking_offsets_out_of_order_is_a_caller_bug(offset: int) -> None:
    c: CommitTracker[int] = CommitTracker()
    c.take(0, 5)
    with pytest.raises(OffsetOrderError):
        c.take(0, offset)


def test_forget_drops_a_revoked_partition_and_ignores_late_completions() -> None:
    c: CommitTracker[int] = CommitTracker()
    c.take(0, 100)
    c.take(1, 7)
    c.forget(0)
    assert c.committable(0) is None
    assert not c.complete(0, 100)
    assert c.partitions() == [1]
    c.take(0, 50)  # re-assigned and read again from the committed offset
    assert c.committable(0) == 50


def test_pending_lists_only_positions_that_moved() -> None:
    c: CommitTracker[int] = CommitTracker()
    c.take(0, 0)
    c.take(1, 0)
    assert c.pending() == {0: 0, 1: 0}
    c.mark_committed(0, 0)
    c.mark_committed(1, 0)
    assert c.pending() == {}
    c.complete(1, 0)
    assert c.pending() == {1: 1}
    c.mark_committed(1, 1)
    assert c.pending() == {}


ops = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.booleans(), st.integers(0, 10**6), st.integers(0, 3)),
    max_size=120,
)


@settings(max_examples=300)
@given(ops)
def test_commit_position_never_passes_an_open_offset(
    steps: list[tuple[int, bool, int, int]],
) -> None:
    c: CommitTracker[int] = CommitTracker()
    taken: dict[int, list[int]] = {0: [], 1: []}
    done: dict[int, set[int]] = {0: set(), 1: set()}
    for p, complete, pick, gap in steps:
        open_ = [o for o in taken[p] if o not in done[p]]
        if open_ and complete:
            offset = open_[pick % len(open_)]
            assert c.complete(p, offset)
            done[p].add(offset)
        else:
            offset = (taken[p][-1] + 1 if taken[p] else 0) + gap
            c.take(p, offset)
            taken[p].append(offset)
        for q in (0, 1):
            position = c.committable(q)
            if not taken[q]:
                assert position is None
                continue
            open_q = [o for o in taken[q] if o not in done[q]]
            expected = min(open_q) if open_q else taken[q][-1] + 1
            assert position == expected
            assert all(o in done[q] for o in taken[q] if o < expected), "all below it done"
            assert c.open_count(q) == len(open_q)


def test_memory_stays_with_the_open_span() -> None:
    c: CommitTracker[int] = CommitTracker()
    c.take(0, 0)
    for offset in range(1, 50_001):
        c.take(0, offset)
        c.complete(0, offset)
    assert c.committable(0) == 0
    c.complete(0, 0)
    assert c.committable(0) == 50_001
    assert c.open_count(0) == 0
    assert len(c._parts[0].taken) == 0, "completed offsets are not kept once nothing blocks them"
