"""The failing-handlers scenario's pure parts: which event meets which fault, what its dead
letter must look like, the poison records' expected rejects, the tallies, the p99 promise."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import yaml

from chaos import faulty
from chaos.checker import Published
from chaos.faulty import Fault
from chaos.harness import chaos_document
from chaos.ledger import Execution
from chaos.scenarios.poison import (
    DeadLetter,
    Reject,
    faulty_specs,
    latency_kept,
    latency_problem,
    open_count,
    p99_ms,
    poison_kinds,
    poison_records,
    tally_faulty,
    tally_rejects,
)
from pipeline.agents.execution_handlers import Handler, Runner
from pipeline.agents.frontend_normalize import Normalizer, Rejected
from pipeline.client.encoder import EventEncoder
from pipeline.handler import TaskMeta
from pipeline.topology import Topology, load_topology
from pipeline.topology.topics import TopicNames

MS = 1_000_000


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    doc = chaos_document("t", "localhost:1", partitions=2, extra=faulty_specs())
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_topology(path)


def pub(n: int, sent_ms: int = 0) -> Published:
    return Published(f"c-{n}", f"k{n % 4}", n, sent_ms * MS)


def ok(sub: str, n: int, started_ms: int = 0, attempt: int = 1) -> Execution:
    return Execution(sub, f"c-{n}", f"k{n % 4}", n, attempt, 1, started_ms * MS)


def meta(n: int, attempt: int = 1) -> TaskMeta:
    return TaskMeta(
        f"c-{n}/faulty", f"c-{n}", "chaos.event", "faulty", None, attempt, None, None, None, {}
    )


def test_each_fault_hits_one_event_in_a_period_and_the_rest_succeed() -> None:
    faults = Counter(faulty.fault_of(f"c-{n}") for n in range(10 * faulty.HANG_EVERY))
    quick = 10 * faulty.HANG_EVERY // faulty.EVERY
    expected: dict[Fault | None, int] = {**dict.fromkeys(Fault, quick), Fault.HANG: 10}
    expected[None] = 10 * faulty.HANG_EVERY - sum(expected.values())
    assert faults == expected
    assert faulty.fault_of("no-number-x") is None


def test_a_flaky_event_fails_only_its_first_attempt() -> None:
    assert faulty.fails(Fault.FLAKY, 1)
    assert not faulty.fails(Fault.FLAKY, 2)
    assert faulty.fails(Fault.HANG, 3)
    assert not faulty.fails(None, 1)


def test_exit_faults_take_turns_between_the_base_exceptions() -> None:
    kinds = {type(faulty.exit_exception(f"c-{10 + i * faulty.EVERY}")) for i in range(3)}
    assert kinds == {SystemExit, KeyboardInterrupt, asyncio.CancelledError}


@pytest.mark.parametrize(
    ("fault", "reason", "error", "expected"),
    [
        (Fault.RAISE, "exhausted", "chaos.faulty.Boom", True),
        (Fault.HANG, "exhausted", "timeout", True),
        (Fault.EXIT, "exhausted", faulty.HANDLER_EXIT, True),
        (Fault.POISON, "non_retriable", "chaos.faulty.Poison", True),
        (Fault.POISON, "exhausted", "chaos.faulty.Poison", False),
        (Fault.FLAKY, "exhausted", "chaos.faulty.Boom", False),
        (None, "exhausted", "timeout", False),
    ],
)
def test_a_dead_letter_must_match_its_fault(
    fault: Fault | None, reason: str, error: str, expected: bool
) -> None:
    assert faulty.explains(fault, reason, error) is expected


def test_the_switch_rereads_the_flag_only_after_its_recheck_interval(tmp_path: Path) -> None:
    now = [0.0]
    flag = tmp_path / "on"
    switch = faulty.Switch(str(flag), 0.5, lambda: now[0])
    assert not switch.on()
    flag.touch()
    now[0] = 0.4
    assert not switch.on()  # cached
    now[0] = 0.6
    assert switch.on()
    assert not faulty.Switch(None).on()


def test_the_handlers_fail_as_msm_expects_them_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through MSM's own runner: what each fault becomes, and successes are recorded."""
    flag = tmp_path / "on"
    flag.touch()
    monkeypatch.setattr(faulty, "_switch", faulty.Switch(str(flag)))
    monkeypatch.setenv("MSM_CHAOS_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setattr(faulty, "HANG_S", 0.3)
    runner = Runner("faulty", 0.1)
    payload = {"key": "k0", "seq": 1}

    async def outcome(handler: Handler, n: int, attempt: int = 1) -> str:
        try:
            await runner.run(handler, payload, meta(n, attempt))
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    async def all_of(handler: Handler) -> list[str]:
        return [await outcome(handler, n) for n in (1, 0, 40, 240, 10, 60, 110, 20, 30)] + [
            await outcome(handler, 30, 2)
        ]

    exits = ["HandlerExit"] * 3
    want = ["ok", "Boom", "HandlerTimeout", "HandlerTimeout", *exits, "Poison", "Boom", "ok"]
    assert asyncio.run(all_of(faulty.misbehave)) == want
    assert asyncio.run(all_of(faulty.misbehave_sync)) == want
    ledger = "".join(p.read_text() for p in (tmp_path / "ledger").glob("*.ledger"))
    assert ledger.count("\tc-1\t") == 2
    assert ledger.count("\tc-30\t") == 2
    assert ledger.count("\n") == 4


def test_poison_records_are_rejected_for_the_reason_expected(topology: Topology) -> None:
    valid = EventEncoder(topology).encode(
        "chaos.event", {"id": "x", "key": "k0", "seq": 0, "sent_ns": 0}
    )
    normalizer = Normalizer(topology, clock_ms=lambda: 0)
    topic = TopicNames(topology.namespace).ingress("chaos.event")
    records = poison_records(0, poison_kinds(valid.value), 4)
    assert len({r.kind for r in records}) == len(records)
    for r in records:
        out = normalizer.normalize(topic, r.key, r.value, [("msm.id", r.event_id.encode())], 0, 0)
        assert isinstance(out, Rejected), r.kind
        assert (r.kind, out.reason) == (r.kind, r.reason)
        assert dict(out.headers)["msm.id"] == r.event_id.encode()


def test_tally_rejects() -> None:
    sent = poison_records(0, [("garbage", "invalid_json", b"x"), ("empty", "empty", b"")], 2)
    rejects = [
        Reject("poison-0", "invalid_json"),
        Reject("poison-1", "oversize"),
        Reject("c-3", "x"),
    ]
    tally = tally_rejects(sent, rejects)
    assert tally.by_reason == {"invalid_json": 1, "oversize": 1}
    assert tally.wrong == ["poison-1 empty: oversize"]
    assert tally.good == ["c-3"]
    assert tally.missing == []
    assert len(tally.failures()) == 2
    assert tally_rejects(sent, []).missing == ["poison-0", "poison-1"]


def test_tally_faulty_counts_ended_lost_and_contradictions() -> None:
    events = [pub(n) for n in (0, 1, 2, 3, 40, 5)]  # c-0 raise, c-40 hang; others succeed
    successes = [ok("faulty", 1), ok("faulty", 2), ok("faulty", 2), ok("faulty", 3), ok("x", 5)]
    successes.append(ok("faulty", 40))
    dead = [
        DeadLetter("c-0", "exhausted", "chaos.faulty.Boom", 3),
        DeadLetter("c-40", "exhausted", "timeout", 3),
        DeadLetter("c-3", "exhausted", "timeout", 3),
    ]
    tally = tally_faulty("faulty", events, successes, dead)
    c = tally.check
    assert (c.published, c.executed, c.lost, c.duplicated) == (6, 5, 1, 1)
    assert c.samples["lost"] == ["c-5 (None)"]
    assert tally.both == ["c-3", "c-40"]
    assert len(tally.unexplained) == 1
    assert tally.dead_by_fault == {"raise": 1, "hang": 1, "None": 1}
    assert len(tally.failures()) == 2
    assert open_count("faulty", events, successes, dead) == 1


def test_tally_faulty_flags_faults_that_never_fired_once_on() -> None:
    events = [pub(0, sent_ms=1), pub(50, sent_ms=3), pub(30, sent_ms=3), pub(2, sent_ms=3)]
    successes = [ok("faulty", 0), ok("faulty", 50), ok("faulty", 30, attempt=2), ok("faulty", 2)]
    tally = tally_faulty("faulty", events, successes, [], faults_from_ns=2 * MS)
    assert tally.missed == ["c-50 (raise)"]  # c-0 was sent before, c-30 is flaky
    assert tally.retried_ok == 1


def test_p99_compares_phases_by_send_time_and_first_start() -> None:
    events = [pub(n, sent_ms=n) for n in range(200)]
    runs = [ok("plain", n, started_ms=n + (50 if n >= 100 else 10)) for n in range(200)]
    runs.append(ok("plain", 0, started_ms=5000))  # a repeat: not the first start
    assert p99_ms(events, runs, "plain", (0, 100 * MS)) == pytest.approx(10)
    assert p99_ms(events, runs, "plain", (100 * MS, 200 * MS)) == pytest.approx(50)
    assert p99_ms(events, runs, "ordered", (0, 100 * MS)) is None


@pytest.mark.parametrize(
    ("a", "b", "kept"),
    [(100, 120, True), (100, 121, False), (5, 25, True), (5, 25.5, False), (50, 10, True)],
)
def test_latency_kept_within_20_percent_or_20_ms(a: float, b: float, kept: bool) -> None:
    assert latency_kept(a, b) is kept


def test_latency_problem_names_a_regression_a_saturated_baseline_and_no_samples() -> None:
    assert latency_problem("plain", 100, 110) is None
    assert "with faults" in (latency_problem("plain", 100, 200) or "")
    assert "saturated" in (latency_problem("plain", 5000, 5000) or "")
    assert "phase B" in (latency_problem("plain", 100, None) or "")
