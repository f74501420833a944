"""Canaries for faust's offset arithmetic, the reason MSM acks strictly in offset order.

``Consumer._new_offset`` picks the offset faust commits next from the acked offsets of a
partition. It commits over a single unacked offset just above the last commit, and over any
unacked head while nothing is committed yet (faust-streaming issue #606). Agents therefore
never ack a record while an earlier one of its partition is unacked (see docs/faust-notes.md).
If faust fixes this, these tests fail: then revisit the notes and the in-order ack rule.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

PART = TP("t", 0)


def _next_commit(committed: int | None, acked: list[int]) -> int | None:
    state: Any = SimpleNamespace(
        _gap=defaultdict(list),  # no compaction gaps (faust keeps an IntervalTree)
        _acked=defaultdict(list, {PART: list(acked)}),
        _acked_index=defaultdict(set, {PART: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {PART: committed}),
    )
    result: int | None = Consumer._new_offset(state, PART)
    return result


def test_contiguous_acks_commit_past_the_last_one() -> None:
    assert _next_commit(50, [50, 51, 52]) == 53


def test_a_gap_of_two_or_more_holds_the_commit() -> None:
    assert _next_commit(50, [52, 53]) is None


def test_faust_commits_over_a_single_unacked_offset_at_the_head() -> None:
    # Offset 50 is still being processed; 51..99 are done. faust commits 100: 50 is skipped.
    assert _next_commit(50, list(range(51, 100))) == 100


def test_faust_commits_over_any_unacked_head_before_its_first_commit() -> None:
    # Nothing committed yet (a new group): offsets 0..9 unacked, 10..19 acked -> commits 20.
    assert _next_commit(None, list(range(10, 20))) == 20
