"""Scenario 4: poison events at ingress and handlers that raise, hang, exit or refuse.

Two phases under the same open-loop load. In phase A the faulty subscribers behave; in phase B
(the flag file of :mod:`chaos.faulty` exists) a few events in a hundred, by id, make the faulty
handlers raise, hang past the timeout, raise SystemExit / KeyboardInterrupt / CancelledError,
raise a ``non_retriable`` exception, or fail once; and garbage is produced straight to the
ingress topic. The promises:

- the healthy subscribers (plain, ordered) lose nothing, keep order, and their p99 latency
  (published -> handler started) in B is within 20 % of A's (or 20 ms, whichever is larger:
  a p99 of a few ms moves by more than 20 % on scheduling noise alone);
- every event of a faulty subscriber either succeeded (ledger) or is in its dead-letter topic,
  never both, and each dead letter is what its fault should lead to;
- every poison record is on the rejected topic with the reason its bytes call for, and no good
  event is;
- no worker dies and the pipeline drains.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from chaos import faulty
from chaos.checker import Published, SubscriberCheck, check
from chaos.drive import drain
from chaos.generator import EVENT_TYPE, Generator
from chaos.harness import SUBSCRIBERS, Harness, chaos_pipeline
from chaos.ledger import Execution
from chaos.model import ChaosContext, ScenarioResult
from loadtest.stats import percentile
from pipeline import headers as h
from pipeline.agents.delivery_policy import DeliveryPolicyError, ErrorChain
from pipeline.avro import wire
from pipeline.client.encoder import EventEncoder, producer_config
from pipeline.client.reader import assigning_consumer
from pipeline.ops.dlq_read import header_pairs, read_ranges, scan
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

WORK_MS = 2.0
RETRY = {"max_attempts": 3, "backoff": "fixed", "initial": "200ms", "max": "1s"}
FAULTY = {"faulty": "chaos.faulty:misbehave", "faulty-sync": "chaos.faulty:misbehave_sync"}
P99_RATIO, P99_SLACK_MS = 1.2, 20.0
SATURATED_MS = 1000.0  # a fault-free p99 above this is a backlog, not a latency
TICK_S = 0.5  # the load loop's step; phase B sends one poison record of each kind per step


def faulty_specs() -> dict[str, dict[str, Any]]:
    """The misbehaving subscribers: few, quick retries and a short timeout so faults end soon."""
    return {
        name: {
            "events": [EVENT_TYPE],
            "handler": handler,
            "concurrency": {"min": 2, "max": 8},
            "max_in_flight": 1000,
            "timeout": f"{faulty.TIMEOUT_S * 1000:.0f}ms",
            "retry": RETRY,
            "non_retriable": [f"{faulty.__name__}.Poison"],
        }
        for name, handler in FAULTY.items()
    }


# ---- poison at ingress ------------------------------------------------------------------------


@dataclass(frozen=True)
class PoisonRecord:
    event_id: str  # the msm.id header: the reject keeps the original headers
    kind: str
    reason: str  # the msm.reject.reason the frontend must give
    key: bytes
    value: bytes


def poison_kinds(valid: bytes) -> list[tuple[str, str, bytes]]:
    """(kind, expected reason, value); ``valid`` is a good event's Avro encoding."""
    body = valid[len(wire.MARKER) + 8 :]
    return [
        ("garbage", "invalid_json", b"\x00\xff\x13 not an event \xfe"),
        ("empty", "empty", b""),
        ("wrong-shape", "missing_field", json.dumps({"hello": "world"}).encode()),
        ("wrong-type", "schema_mismatch", b'{"id": "x", "key": "k0", "seq": "7", "sent_ns": 0}'),
        ("unknown-schema", "unknown_fingerprint", wire.MARKER + b"\x00" * 8 + body),
        ("truncated-avro", "truncated", valid[: len(valid) - 4]),
    ]


def poison_records(
    start: int, kinds: Sequence[tuple[str, str, bytes]], keys: int
) -> list[PoisonRecord]:
    """One record of each kind, ids ``poison-<start + i>``, keyed like the good events."""
    return [
        PoisonRecord(f"poison-{n}", kind, reason, f"k{n % keys}".encode(), value)
        for n, (kind, reason, value) in enumerate(kinds, start)
    ]


class PoisonSender:
    """Produces poison straight to the ingress topic, as a broken producer would."""

    def __init__(self, topology: Topology, keys: int) -> None:
        self.topic = TopicNames(topology.namespace).ingress(EVENT_TYPE)
        self.keys = keys
        self._producer = Producer(producer_config(topology))
        self.kinds = poison_kinds(_valid_encoding(topology))
        self.sent: list[PoisonRecord] = []  # acknowledged
        self.refused = 0
        self._next = 0

    def send_batch(self) -> None:
        """One record of each kind; returns once Kafka acknowledged (or refused) them."""
        batch = poison_records(self._next, self.kinds, self.keys)
        self._next += len(batch)
        for record in batch:
            self._producer.produce(
                self.topic,
                record.value,
                record.key,
                headers=[(h.EVENT_ID, record.event_id.encode())],
                on_delivery=self._delivered(record),
            )
        self._producer.flush(30)

    def _delivered(self, record: PoisonRecord) -> Callable[[KafkaError | None, Message], None]:
        def done(error: KafkaError | None, _msg: Message) -> None:
            if error is None:
                self.sent.append(record)
            else:
                self.refused += 1

        return done


def _valid_encoding(topology: Topology) -> bytes:
    payload = {"id": "x", "key": "k0", "seq": 0, "sent_ns": 0}
    return EventEncoder(topology).encode(EVENT_TYPE, payload).value


# ---- reading what came out -----------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    reason: str  # msm.dlq.reason
    error_type: str  # the last error's type
    attempts: int  # errors in the chain


@dataclass(frozen=True)
class Reject:
    event_id: str
    reason: str


def read_topic(topology: Topology, topic: str) -> Iterator[dict[str, bytes]]:
    """Every record's headers on ``topic`` up to its current end (no group joined)."""
    consumer = assigning_consumer(topology.kafka, f"{topology.namespace}.chaos-reader")
    try:
        ranges = read_ranges(consumer, topic, None, 10.0)
        for message in scan(consumer, topic, ranges, 10.0):
            yield dict(header_pairs(message))
    finally:
        consumer.close()


def dead_letter(headers: Mapping[str, bytes]) -> DeadLetter:
    try:
        chain = ErrorChain.from_json(headers.get(h.ERRORS, b""))
    except DeliveryPolicyError:
        chain = ErrorChain()
    last = chain.errors[-1].error_type if chain.errors else ""
    text = _text(headers, h.EVENT_ID)
    return DeadLetter(text, _text(headers, h.DLQ_REASON), last, chain.total)


def reject(headers: Mapping[str, bytes]) -> Reject:
    return Reject(_text(headers, h.EVENT_ID), _text(headers, h.REJECT_REASON))


def _text(headers: Mapping[str, bytes], name: str) -> str:
    return headers.get(name, b"").decode("utf-8", "replace")


# ---- checking ----------------------------------------------------------------------------------


@dataclass
class FaultyTally:
    """One faulty subscriber: each event succeeded or was dead-lettered as its fault says."""

    check: SubscriberCheck
    dead_by_fault: Counter[str] = field(default_factory=Counter)
    both: list[str] = field(default_factory=list)  # succeeded and dead-lettered
    unexplained: list[str] = field(default_factory=list)  # dead letters no fault explains
    twice: list[str] = field(default_factory=list)  # dead-lettered more than once
    missed: list[str] = field(default_factory=list)  # sent with faults on, yet succeeded
    retried_ok: int = 0  # successes on a later attempt (the flaky fault)

    def failures(self) -> list[str]:
        name, found = self.check.subscriber, []
        for what, ids in (
            ("both succeeded and dead-lettered", self.both),
            ("dead-lettered but not as their fault says", self.unexplained),
            ("dead-lettered more than once", self.twice),
            ("succeeded though sent with faults on (the fault never fired)", self.missed),
        ):
            if ids:
                found.append(f"{name}: {len(ids)} {what} (e.g. {', '.join(ids[:3])})")
        return found


def tally_faulty(
    name: str,
    published: Sequence[Published],
    successes: Iterable[Execution],
    dead: Iterable[DeadLetter],
    faults_from_ns: int | None = None,
) -> FaultyTally:
    """``executed`` counts events that ended (succeeded or dead-lettered); ``lost`` neither.
    Events sent from ``faults_from_ns`` on whose fault always fails must not succeed."""
    mine_ok = [e for e in successes if e.subscriber == name]
    ok = Counter(e.event_id for e in mine_ok)
    letters: dict[str, list[DeadLetter]] = defaultdict(list)
    for letter in dead:
        letters[letter.event_id].append(letter)
    result = SubscriberCheck(name, False, published=len(published))
    tally = FaultyTally(result)
    for p in published:
        mine = letters.get(p.event_id, [])
        fault = faulty.fault_of(p.event_id)
        if p.event_id in ok and mine:
            tally.both.append(p.event_id)
        on = faults_from_ns is not None and p.sent_ns >= faults_from_ns
        if on and p.event_id in ok and fault not in (None, faulty.Fault.FLAKY):
            tally.missed.append(f"{p.event_id} ({fault})")
        if len(mine) > 1:
            tally.twice.append(p.event_id)
        for letter in mine:
            tally.dead_by_fault[str(fault)] += 1
            if not faulty.explains(fault, letter.reason, letter.error_type):
                tally.unexplained.append(
                    f"{p.event_id} ({fault}: {letter.reason} {letter.error_type})"
                )
        if p.event_id in ok or mine:
            result.executed += 1
        else:
            result.lost += 1
            if len(result.samples.setdefault("lost", [])) < 5:
                result.samples["lost"].append(f"{p.event_id} ({fault})")
    tally.retried_ok = sum(1 for e in mine_ok if e.attempt > 1)
    result.executions = sum(ok.values())
    result.duplicated = sum(n - 1 for n in ok.values())
    return tally


def open_count(
    name: str,
    published: Sequence[Published],
    successes: Iterable[Execution],
    dead: Iterable[DeadLetter],
) -> int:
    """How many of ``published`` have neither succeeded nor been dead-lettered for ``name``."""
    done = {e.event_id for e in successes if e.subscriber == name}
    done.update(d.event_id for d in dead)
    return sum(1 for p in published if p.event_id not in done)


@dataclass(frozen=True)
class RejectTally:
    by_reason: Counter[str]
    missing: list[str]  # poison acknowledged but never rejected
    wrong: list[str]  # rejected for another reason than its bytes call for
    good: list[str]  # rejected events that were not poison

    def failures(self) -> list[str]:
        found = []
        for what, ids in (
            ("poison records never reached the rejected topic", self.missing),
            ("poison records rejected for the wrong reason", self.wrong),
            ("good events rejected", self.good),
        ):
            if ids:
                found.append(f"{len(ids)} {what} (e.g. {', '.join(ids[:3])})")
        return found


def tally_rejects(sent: Sequence[PoisonRecord], rejects: Iterable[Reject]) -> RejectTally:
    expected = {p.event_id: p for p in sent}
    seen: dict[str, Reject] = {}
    good = []
    for r in rejects:
        if r.event_id in expected:
            seen[r.event_id] = r
        else:
            good.append(r.event_id or "(no id)")
    missing = [i for i in expected if i not in seen]
    wrong = [
        f"{i} {expected[i].kind}: {r.reason}"
        for i, r in seen.items()
        if r.reason != expected[i].reason
    ]
    return RejectTally(Counter(r.reason for r in seen.values()), missing, wrong, good)


def p99_ms(
    published: Iterable[Published],
    executions: Iterable[Execution],
    subscriber: str,
    window: tuple[int, int],
) -> float | None:
    """p99 of published -> first handler start, of the due-now events sent in ``window``."""
    start, end = window
    sent = {
        p.event_id: p.sent_ns for p in published if start <= p.sent_ns < end and not p.deliver_at_ns
    }
    first: dict[str, int] = {}
    for e in executions:
        if e.subscriber == subscriber and e.event_id in sent:
            first[e.event_id] = min(first.get(e.event_id, e.started_ns), e.started_ns)
    waits = sorted((first[i] - sent[i]) / 1e6 for i in first)
    return percentile(waits, 99) if waits else None


def latency_problem(sub: str, baseline_ms: float | None, faulty_ms: float | None) -> str | None:
    """The broken latency promise, if any. A saturated baseline fails too: its p99 is the
    backlog's age, which says nothing about faults, so the promise was not tested."""
    if baseline_ms is None or faulty_ms is None:
        return f"{sub}: no latency samples in phase {'A' if baseline_ms is None else 'B'}"
    if baseline_ms > SATURATED_MS:
        return (
            f"{sub}: p99 {baseline_ms:.0f} ms already without faults: the pipeline was "
            "saturated at this rate on this machine, so the latency promise went untested"
        )
    if not latency_kept(baseline_ms, faulty_ms):
        return f"{sub}: p99 {faulty_ms:.1f} ms with faults vs {baseline_ms:.1f} ms without"
    return None


def latency_kept(baseline_ms: float, faulty_ms: float) -> bool:
    """B's p99 within 20 % of A's, or within :data:`P99_SLACK_MS` of it when that is more."""
    return faulty_ms <= max(baseline_ms * P99_RATIO, baseline_ms + P99_SLACK_MS)


# ---- the scenario --------------------------------------------------------------------------


@dataclass(frozen=True)
class Phases:
    warmup_s: float
    phase_s: float

    def windows(self, t0_ns: int, flip_ns: int, end_ns: int) -> dict[str, tuple[int, int]]:
        return {"A": (t0_ns + int(self.warmup_s * 1e9), flip_ns), "B": (flip_ns, end_ns)}


def failing_handlers(ctx: ChaosContext) -> ScenarioResult:
    """Phase A fault-free, phase B faulty handlers and poison; see the module docstring."""
    rate = 100.0  # four handler subscribers: 400 runs/s, as kill-layers' 200 events/s x 2
    phases = Phases(ctx.seconds(10, 3), ctx.seconds(60, 12))
    keys, partitions = int(ctx.seconds(64, 16)), 6
    flag = ctx.work_dir / "faults-on"
    flag.unlink(missing_ok=True)
    settings = _settings(rate, phases, keys, partitions)
    with chaos_pipeline(
        ctx.work_dir,
        ctx.bootstrap,
        ctx.say,
        partitions=partitions,
        work_ms=WORK_MS,
        extra=faulty_specs(),
        env={faulty.FAULTS_ENV: str(flag)},
    ) as h:
        poison = PoisonSender(h.topology, keys)
        gen = Generator(h.publisher, rate, keys)
        started = time.time_ns()
        with gen.running():
            _load(h, phases.warmup_s + phases.phase_s, None)
            flip = time.time_ns()
            flag.write_text("on\n", encoding="utf-8")
            ctx.say("faults on")
            _load(h, phases.phase_s, poison)
            end = time.time_ns()
        sent = gen.result()
        published = sent.published
        ctx.say(f"published {len(published)}, {len(poison.sent)} poison records; draining")
        drain_s = drain(h, published, ctx.seconds(60, 30), ctx.seconds(900, 300))
        settle_s = _settle_faulty(h, published, ctx.seconds(60, 30), ctx.seconds(600, 120))
        time.sleep(ctx.seconds(5, 2))  # repeats may trail the last first execution
        h.ledger.poll()
        h.workers.supervise()
        executions = h.ledger.executions
        on_ns = flip + int((faulty.RECHECK_S + 0.5) * 1e9)  # every worker has seen the flag
        tallies = [
            tally_faulty(n, published, executions, _dead_letters(h.topology, n), on_ns)
            for n in FAULTY
        ]
        rejects = tally_rejects(poison.sent, _rejects(h.topology))
        windows = phases.windows(started, flip, end)
        latency = {
            s: {k: p99_ms(published, executions, s, w) for k, w in windows.items()}
            for s in SUBSCRIBERS
        }
        checks = check(published, executions, SUBSCRIBERS)
        exits = list(h.workers.exits)
    settings["published"] = (
        f"{len(published)} acknowledged in {sent.seconds:.0f} s, {sent.refused} refused, "
        f"worst send {sent.behind_ms:.0f} ms behind schedule; {len(poison.sent)} poison "
        f"records ({poison.refused} refused)"
    )
    result = ScenarioResult(
        "failing-handlers",
        started,
        checks + [t.check for t in tallies],
        [],
        settings,
        exits,
        drain_s,
    )
    _judge_faulty(result, tallies, settle_s)
    _judge_rejects(result, rejects)
    _judge_latency(result, latency)
    abandoned = _count_in_logs(ctx.work_dir, "was abandoned")
    result.notes.append(f"sync handler threads abandoned at their timeout: {abandoned}")
    return result


def _settings(rate: float, phases: Phases, keys: int, partitions: int) -> dict[str, str]:
    retry = f"{RETRY['max_attempts']} attempts, {RETRY['initial']} apart"
    return {
        "rate": f"{rate:.0f} events/s, open loop, all due now",
        "keys": f"{keys} (per-key seq), {partitions} partitions",
        "phases": f"{phases.warmup_s:.0f} s warm-up, then A {phases.phase_s:.0f} s fault-free, "
        f"B {phases.phase_s:.0f} s faulty (same load)",
        "subscribers": "plain, ordered (healthy, recording); faulty (async), faulty-sync "
        f"(sync, in threads): timeout {faulty.TIMEOUT_S:g} s, {retry}, "
        "non_retriable chaos.faulty.Poison",
        "faults (B)": f"1 event in {faulty.EVERY} each: raise, exit (SystemExit / "
        "KeyboardInterrupt / CancelledError), non-retriable, flaky (fails attempt 1 only); "
        f"1 in {faulty.HANG_EVERY}: hang {faulty.HANG_S:g} s (every attempt)",
        "poison (B)": f"every {TICK_S:g} s one each of garbage bytes, empty, JSON of the wrong "
        "shape, JSON of the wrong type, Avro of an unknown schema, truncated Avro, produced "
        "straight to the ingress topic",
        "latency promise": f"p99 published -> handler started of plain and ordered in B <= "
        f"max({P99_RATIO:g} x A, A + {P99_SLACK_MS:g} ms)",
    }


def _load(h: Harness, seconds: float, poison: PoisonSender | None) -> None:
    """Like :func:`chaos.drive.load_for`, with a poison batch each step when given."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(TICK_S, max(0.0, end - time.monotonic())))
        if poison is not None:
            poison.send_batch()
        for gone in h.workers.supervise():
            h.say(f"[red]{gone.target} worker (pid {gone.pid}) exited {gone.code}[/red]")
        h.ledger.poll()


def _settle_faulty(
    h: Harness, published: Sequence[Published], idle_s: float, cap_s: float
) -> float | None:
    """Seconds until every event ended for each faulty subscriber (succeeded or dead-lettered);
    None when nothing ended for ``idle_s`` or after ``cap_s``."""
    began = last_progress = time.monotonic()
    before = -1
    while True:
        h.ledger.poll()
        h.workers.supervise()
        left = sum(
            open_count(n, published, h.ledger.executions, _dead_letters(h.topology, n))
            for n in FAULTY
        )
        now = time.monotonic()
        if left == 0:
            return now - began
        if left != before:
            before, last_progress = left, now
            h.say(f"faulty subscribers: {left} events not ended yet")
        if now - last_progress > idle_s or now - began > cap_s:
            h.say(f"[red]faulty subscribers stuck with {left} events not ended[/red]")
            return None
        time.sleep(2.0)


def _dead_letters(topology: Topology, subscriber: str) -> list[DeadLetter]:
    topic = TopicNames(topology.namespace).dlq(subscriber)
    return [dead_letter(r) for r in read_topic(topology, topic)]


def _rejects(topology: Topology) -> list[Reject]:
    return [reject(r) for r in read_topic(topology, TopicNames(topology.namespace).rejected)]


def _judge_faulty(
    result: ScenarioResult, tallies: Sequence[FaultyTally], settle_s: float | None
) -> None:
    for t in tallies:
        result.failures += t.failures()
        by_fault = ", ".join(f"{k} {v}" for k, v in sorted(t.dead_by_fault.items()))
        result.settings[f"{t.check.subscriber} dead letters"] = (
            f"{by_fault or 'none'}; {t.retried_ok} succeeded on a retry"
        )
    if settle_s is None:
        result.failures.append("the faulty subscribers never finished: see their lost events")
    else:
        result.notes.append(f"faulty subscribers settled {settle_s:.1f} s after the drain")
    result.notes.append(
        "faulty rows: executed = events that ended (succeeded, or dead-lettered), lost = "
        "neither, duplicated = successes beyond the first"
    )


def _judge_rejects(result: ScenarioResult, rejects: RejectTally) -> None:
    result.failures += rejects.failures()
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejects.by_reason.items()))
    result.settings["rejected"] = reasons or "none"


def _judge_latency(
    result: ScenarioResult, latency: Mapping[str, Mapping[str, float | None]]
) -> None:
    for sub, p99 in latency.items():
        a, b = p99["A"], p99["B"]
        if a is not None and b is not None:
            result.settings[f"{sub} p99"] = f"A {a:.1f} ms, B {b:.1f} ms ({b / a - 1:+.0%})"
        problem = latency_problem(sub, a, b)
        if problem:
            result.failures.append(problem)


def _count_in_logs(directory: Path, text: str) -> int:
    return sum(
        p.read_text("utf-8", "replace").count(text) for p in directory.glob("*-execution.log")
    )
