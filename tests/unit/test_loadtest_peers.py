"""The peers scenario's pure parts: when a step keeps up, which rate comes next, ledger tailing."""

from __future__ import annotations

from pathlib import Path

from loadtest.peer_steps import RateSearch, Step, backlog_bounded
from loadtest.peer_workers import LedgerTail
from loadtest.redis_server import free_port, ping

EMPTY = [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]


def _step(target: float, completed: float | None = None, *, offered: float | None = None) -> Step:
    done = target if completed is None else completed
    return Step(target, target if offered is None else offered, done, EMPTY)


def test_step_keeps_up_at_95_percent_with_an_empty_queue() -> None:
    assert _step(1000, 950).keeps_up
    assert not _step(1000, 940).keeps_up


def test_a_growing_queue_fails_the_step_even_when_completions_look_fine() -> None:
    growing = [(t / 4, t * 40.0) for t in range(12)]  # +160 messages/s
    assert not Step(100, 100, 99, growing).keeps_up


def test_backlog_allows_a_quarter_second_of_traffic_or_the_floor() -> None:
    assert backlog_bounded([(0.0, 0.0), (1.0, 20.0)], rate=10)  # floor: 20 messages
    assert not backlog_bounded([(0.0, 0.0), (1.0, 21.0)], rate=10)
    assert backlog_bounded([(0.0, 250.0), (1.0, 250.0)], rate=1000)  # flat, 0.25 s of traffic
    assert not backlog_bounded([(0.0, 0.0), (1.0, 300.0)], rate=1000)
    assert backlog_bounded([], rate=1000)


def test_a_spike_that_drains_by_the_end_is_not_growth() -> None:
    spike = [(0.0, 0.0), (1.0, 0.0), (2.0, 400.0), (3.0, 0.0), (4.0, 0.0), (5.0, 0.0)]
    assert backlog_bounded(spike, rate=1000)


def test_one_high_sample_at_the_end_is_averaged_with_the_last_quarter() -> None:
    samples = [(t / 4, 0.0) for t in range(16)] + [(4.0, 62.0)]
    assert backlog_bounded(samples, rate=238)  # allowance 59.5; last quarter mean ~12
    assert not backlog_bounded([(t / 4, 100.0) for t in range(17)], rate=238)


def test_a_publisher_that_cannot_offer_the_rate_is_flagged_and_fails() -> None:
    step = _step(1000, 600, offered=600)
    assert step.publisher_limited
    assert not step.keeps_up


def _drive(search: RateSearch, capacity: float) -> list[float]:
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(_step(rate, min(rate, capacity)))
    return tried


def test_search_doubles_then_bisects_between_pass_and_fail() -> None:
    search = RateSearch(100, factor=2, refine=2, max_steps=20)
    assert _drive(search, capacity=500) == [100, 200, 400, 800, 566, 476]
    assert search.best is not None
    assert search.best.target == 476
    assert search.failed == 566


def test_search_goes_down_when_the_first_step_fails() -> None:
    search = RateSearch(200, factor=4, refine=0, max_steps=5)
    assert _drive(search, capacity=30) == [200, 50, 12]
    assert search.best is not None
    assert search.best.target == 12


def test_search_stops_at_max_steps_and_cap() -> None:
    assert _drive(RateSearch(200, factor=4, refine=0, max_steps=2), capacity=1e9) == [200, 800]
    capped = RateSearch(100, factor=2, refine=3, max_steps=20, cap=300)
    assert _drive(capped, capacity=1e9) == [100, 200]


def test_search_with_nothing_passing_ends_without_best() -> None:
    search = RateSearch(4, factor=4, refine=2, max_steps=10)
    assert _drive(search, capacity=0) == [4, 1]
    assert search.best is None


def test_ledger_tail_reads_complete_lines_once(tmp_path: Path) -> None:
    ledger = tmp_path / "11.ledger"
    ledger.write_text("e-1 10 20 30 11 sub\ne-2 11 21 3", encoding="ascii")  # second line cut
    tail = LedgerTail(tmp_path)
    assert [(r.event_id, r.sent_ns, r.finished_ns, r.subscriber) for r in tail.poll()] == [
        ("e-1", 10, 30, "sub")
    ]
    with ledger.open("a", encoding="ascii") as f:
        f.write("1 12 \n")
    (tmp_path / "12.ledger").write_text("e-3 1 2 3 12 \n", encoding="ascii")
    runs = tail.poll()
    assert [(r.event_id, r.finished_ns, r.pid) for r in runs] == [("e-2", 31, 12), ("e-3", 3, 12)]
    assert tail.poll() == []


def test_free_port_has_no_redis() -> None:
    assert not ping(free_port())
