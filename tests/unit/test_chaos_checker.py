"""The chaos checker, ledger, generator plan and report on synthetic data: no broker."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
import yaml

from chaos import report
from chaos.checker import Kill, Published, SubscriberCheck, busy_at, check
from chaos.generator import EVENT_TYPE, Generator, plan
from chaos.harness import HANDLER, chaos_document
from chaos.ledger import Execution, LedgerTail, LedgerWriter, parse_line
from chaos.model import Exited, Outcome, ScenarioResult
from pipeline.client.errors import PublishError
from pipeline.topology import load_topology

SUBS = {"plain": False, "ordered": True}
S = 1_000_000_000  # ns


def pub(n: int, key: str = "k0", seq: int | None = None, deliver_at_ns: int = 0) -> Published:
    return Published(f"e-{n}", key, n if seq is None else seq, n * S, deliver_at_ns)


def run(p: Published, sub: str, at_s: float, attempt: int = 1) -> Execution:
    return Execution(sub, p.event_id, p.key, p.seq, attempt, 42, int(at_s * S))


def by_name(checks: list[SubscriberCheck]) -> dict[str, SubscriberCheck]:
    return {c.subscriber: c for c in checks}


def test_a_clean_run_has_nothing_to_report() -> None:
    events = [pub(i) for i in range(5)]
    runs = [run(p, s, i + 0.5) for i, p in enumerate(events) for s in SUBS]
    for c in check(events, runs, SUBS):
        assert (c.published, c.executed, c.executions) == (5, 5, 5)
        assert (c.lost, c.duplicated, c.reordered, c.early, c.unexpected) == (0, 0, 0, 0, 0)
        assert c.problems() == []


def test_lost_counts_acknowledged_events_never_run_per_subscriber() -> None:
    events = [pub(i) for i in range(4)]
    runs = [run(p, "plain", 1) for p in events] + [run(events[0], "ordered", 1)]
    found = by_name(check(events, runs, SUBS))
    assert found["plain"].lost == 0
    assert found["ordered"].lost == 3
    assert found["ordered"].samples["lost"] == ["e-1", "e-2", "e-3"]
    assert found["ordered"].problems() == ["ordered: 3 lost"]


def test_duplicates_are_attributed_to_the_kill_between_first_run_and_repeat() -> None:
    a, b = pub(1), pub(2)
    kills = [Kill("flow", 10, 5 * S), Kill("execution", 11, 20 * S, 25 * S, 12)]
    runs = [
        run(a, "plain", 19.9),
        run(a, "plain", 26),  # in flight at the execution kill
        run(b, "plain", 21),
        run(b, "plain", 22),  # no kill between: unexplained
    ]
    [plain] = check([a, b], runs, {"plain": False}, kills)
    assert plain.duplicated == 2
    assert plain.duplicates_by_kill == {"execution (pid 11)": 1}
    assert plain.unexplained_duplicates == 1
    assert plain.max_lead_ms == pytest.approx(100)
    assert plain.problems() == []  # at least once allows repeats


def test_the_latest_kill_in_between_takes_the_duplicate() -> None:
    a = pub(1)
    kills = [Kill("frontend", 1, 3 * S), Kill("delivery", 2, 6 * S)]
    [c] = check([a], [run(a, "plain", 2), run(a, "plain", 7)], {"plain": False}, kills)
    assert c.duplicates_by_kill == {"delivery (pid 2)": 1}


def test_busy_at_tells_how_busy_the_killed_process_was() -> None:
    a = pub(1)
    runs = [run(a, "plain", t) for t in (1.0, 9.2, 9.9, 11)]  # pid 42
    busy = busy_at(Kill("execution", 42, 10 * S), runs)
    assert busy is not None
    assert busy[0] == 2
    assert busy[1] == pytest.approx(100)
    assert busy_at(Kill("flow", 7, 10 * S), runs) is None


def test_reordered_looks_at_first_executions_of_each_key_only() -> None:
    k0 = [pub(i, "k0", i) for i in range(4)]
    k1 = [pub(10 + i, "k1", i) for i in range(2)]
    runs = [
        run(k0[0], "ordered", 1),
        run(k0[1], "ordered", 2),
        run(k1[1], "ordered", 2.5),  # k1: seq 1 before seq 0
        run(k0[0], "ordered", 3),  # a replayed repeat: not a reorder
        run(k0[3], "ordered", 4),
        run(k0[2], "ordered", 5),  # k0: seq 2 after 3
        run(k1[0], "ordered", 6),
    ]
    [c] = check(k0 + k1, runs, {"ordered": True})
    assert c.reordered == 2
    assert c.samples["reordered"] == ["key k0: seq 2 after 3", "key k1: seq 0 after 1"]
    assert c.duplicated == 1
    assert c.problems() == ["ordered: 2 reordered"]


def test_reorders_do_not_count_for_unordered_subscribers_or_delayed_events() -> None:
    late = pub(0, "k0", 0, deliver_at_ns=10 * S)  # delayed: overtaken by design
    now = pub(1, "k0", 1)
    runs = [run(now, s, 2) for s in SUBS] + [run(late, s, 11) for s in SUBS]
    for c in check([late, now], runs, SUBS):
        assert c.reordered == 0


def test_early_counts_every_execution_before_deliver_at() -> None:
    delayed = pub(1, deliver_at_ns=10 * S)
    runs = [run(delayed, "plain", 9.5), run(delayed, "plain", 10.2)]
    [c] = check([delayed], runs, {"plain": False})
    assert c.early == 1
    assert c.samples["early"] == ["e-1 (500 ms before deliver_at)"]
    assert c.problems() == ["plain: 1 early"]


def test_executions_of_unacknowledged_events_are_unexpected_not_duplicates() -> None:
    known = pub(1)
    ghost = Execution("plain", "ghost", "k9", 0, 1, 1, S)
    [c] = check([known], [run(known, "plain", 2), ghost, ghost], {"plain": False})
    assert (c.executed, c.unexpected, c.duplicated, c.executions) == (1, 1, 0, 3)


def test_ledger_lines_round_trip_and_a_cut_line_waits_for_its_newline(tmp_path: Path) -> None:
    first = Execution("plain", "e-1", "k1", 7, 2, os.getpid(), 123)
    assert parse_line(first.line()) == first
    assert parse_line("garbage\n") is None
    LedgerWriter(tmp_path).write(first)
    tail = LedgerTail(tmp_path)
    assert tail.poll() == [first]
    second = Execution("ordered", "e-2", "k2", 8, 1, 99, 456)
    other = tmp_path / "99.ledger"
    line = second.line()
    other.write_text(line[:5], encoding="utf-8")  # a writer mid-line
    assert tail.poll() == []
    with other.open("a", encoding="utf-8") as f:
        f.write(line[5:])
    assert tail.poll() == [second]
    assert tail.poll() == []
    assert tail.executions == [first, second]


def test_plan_numbers_each_key_on_its_own_and_delays_every_nth() -> None:
    events = list(islice(plan("x", 3, delayed_every=4, delays_ms=(100, 200)), 12))
    assert [e.event_id for e in events[:2]] == ["x-0", "x-1"]
    assert len({e.event_id for e in events}) == 12
    for key in ("k0", "k1", "k2"):
        assert [e.seq for e in events if e.key == key] == [0, 1, 2, 3]
    delayed = [e for e in events if e.delay_ms]
    assert [events.index(e) for e in delayed] == [3, 7, 11]
    assert all(100 <= e.delay_ms <= 200 for e in delayed)


def result(lost: int = 0) -> ScenarioResult:
    plain = SubscriberCheck("plain", False, published=10, executed=10 - lost, lost=lost)
    ordered = SubscriberCheck("ordered", True, published=10, executed=10, duplicated=1)
    ordered.duplicates_by_kill = {"execution (pid 7)": 1}
    kill = Kill("execution", 7, 3 * S, 5 * S, 8)
    return ScenarioResult("kill-layers", 0, [plain, ordered], [kill], {"rate": "100/s"})


def render(outcomes: list[Outcome]) -> str:
    machine = {"CPU": "Test CPU"}
    return report.render(
        outcomes, smoke=True, started=0, seconds=60, command="python -m chaos", machine=machine
    )


def test_report_tables_the_checks_and_the_kills() -> None:
    text = render([Outcome("kill-layers", "ok", 60, result())])
    assert "**PASS**" in text
    assert "| plain | no | 10 | 10 | 0 | 0 | n/a | 0 |" in text
    assert "| ordered | yes | 10 | 10 | 0 | 1 | 0 | 0 |" in text
    assert "| 1 | execution | 3.0 s | 7 | 2.0 s | 8 | 0 | 1 |" in text
    assert "- CPU: Test CPU" in text
    assert "`python -m chaos`" in text


def test_lost_events_a_dead_worker_or_a_crash_fail_the_report() -> None:
    assert "**FAIL**" in render([Outcome("kill-layers", "ok", 60, result(lost=2))])
    dead = result()
    dead.exits.append(Exited("flow", 5, 1, 0, "Traceback: boom"))
    text = render([Outcome("kill-layers", "ok", 60, dead)])
    assert "**FAIL**" in text
    assert "Traceback: boom" in text
    crashed = Outcome("kill-layers", "failed", 3, error="RuntimeError: no broker")
    text = render([crashed])
    assert "kill-layers crashed" in text
    assert "RuntimeError: no broker" in text
    assert not crashed.passed


def test_the_chaos_topology_loads_with_an_ordered_and_a_deduped_subscriber(tmp_path: Path) -> None:
    doc = chaos_document("chaostest", "localhost:9092", partitions=6)
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    topology = load_topology(path)
    assert topology.events[EVENT_TYPE].key == "key"
    subs = topology.subscribers
    assert {name: s.ordered for name, s in subs.items()} == SUBS
    assert all(s.dedup_window == timedelta(hours=1) for s in subs.values())
    assert all(s.handler == HANDLER for s in subs.values())


class FakePublisher:
    """Refuses event c-1 at send and reports c-2 refused by Kafka at flush."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, datetime | None]] = []

    def publish(
        self,
        event_type: str,
        payload: object,
        *,
        event_id: str,
        deliver_at: datetime | None,
        wait: bool,
    ) -> str:
        if event_id == "c-1":
            raise PublishError("queue full", retriable=True)
        self.sent.append((event_id, deliver_at))
        return event_id

    def flush(self, timeout_s: float = 30.0) -> None:
        if any(i == "c-2" for i, _ in self.sent):
            self.sent = [s for s in self.sent if s[0] != "c-2"]
            raise PublishError("refused", retriable=False, event_ids=["c-2"])


def test_only_events_kafka_acknowledged_count_as_published() -> None:
    fake = FakePublisher()
    gen = Generator(fake, rate=400, keys=2, delayed_every=3, delays_ms=(1000, 1000))
    with gen.running():
        while gen.sent < 6:
            time.sleep(0.01)
    sent = gen.result()
    ids = [p.event_id for p in sent.published]
    assert ids[:3] == ["c-0", "c-3", "c-4"]  # c-1 raised, Kafka refused c-2
    assert sent.refused == 2
    [delayed] = [p for p in sent.published if p.event_id == "c-5"]
    planned_at = dict(fake.sent)["c-5"]
    assert planned_at is not None
    assert delayed.deliver_at_ns == int(planned_at.timestamp() * 1000) * 1_000_000
    for p in sent.published:
        assert bool(p.deliver_at_ns) == (int(p.event_id[2:]) % 3 == 2)
