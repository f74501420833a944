"""Scenario 5: an HTTP subscriber whose endpoint turns slow, then unavailable (503 with
``Retry-After``), then heals, under a steady load.

The promise: the backlog waits in Kafka (the delivery consumer group's lag on the subscriber's
topic grows), not in the delivery worker's memory (its RSS stays flat), nothing is dead-lettered
while the endpoint honestly says when to come back, and once it heals every event arrives.
The subscriber has no ``health_check``: a platform must cope with 503 + Retry-After alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from chaos.checker import check
from chaos.drive import drain, load_for
from chaos.endpoint_server import HEALED, HEALTHY, EndpointServer, Mode, Stats, slow, unavailable
from chaos.generator import EVENT_TYPE, Generator, Sent
from chaos.harness import SUBSCRIBERS, Harness, chaos_pipeline
from chaos.model import ChaosContext, ScenarioResult
from pipeline.ops.lag import collect_lag, open_admin
from pipeline.topology.topics import TopicNames

REMOTE = "remote"
MAX_IN_FLIGHT = 32
LATENCY_MS = (300, 1000)  # mean 650 ms: 32 in flight make ~49/s, below either load
RETRY_AFTER_S = (1, 2)
# A held backlog costs the delivery worker at most its parked read-ahead (a few thousand small
# records, a few MB); a backlog kept in memory would grow with it (tens of MB at these rates).
RSS_RISE_MAX_MB = 30.0
RSS_RISE_MAX = 0.3  # ... and more than this fraction of the healthy RSS: allocator noise is not


@dataclass(frozen=True)
class Sample:
    """One second of the run: the phase, the delivery worker's RSS, the remote backlog."""

    at_s: float
    phase: str
    rss_mb: float | None
    lag: int | None


@dataclass(frozen=True)
class PhaseSummary:
    phase: str
    seconds: float
    rss_max_mb: float | None
    lag_max: int | None


def rss_mb(status: str) -> float | None:
    """VmRSS from a ``/proc/<pid>/status`` text, in MB; None when absent (the process is gone)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def summarize(samples: list[Sample]) -> list[PhaseSummary]:
    """Per phase in the order they came: duration, peak RSS, peak lag."""
    order: list[str] = []
    for s in samples:
        if s.phase not in order:
            order.append(s.phase)
    out = []
    for phase in order:
        mine = [s for s in samples if s.phase == phase]
        rss = [s.rss_mb for s in mine if s.rss_mb is not None]
        lags = [s.lag for s in mine if s.lag is not None]
        span = mine[-1].at_s - mine[0].at_s + 1 if mine else 0.0
        out.append(PhaseSummary(phase, span, max(rss, default=None), max(lags, default=None)))
    return out


def memory_problem(healthy_mb: float | None, peak_mb: float | None) -> str | None:
    """A failure when the faults' peak RSS rose beyond both limits over the healthy peak."""
    if healthy_mb is None or peak_mb is None:
        return "the delivery worker's RSS could not be read"
    rise = peak_mb - healthy_mb
    if rise > RSS_RISE_MAX_MB and rise > RSS_RISE_MAX * healthy_mb:
        return (
            f"delivery RSS rose {rise:.0f} MB ({healthy_mb:.0f} -> {peak_mb:.0f} MB) while the "
            "endpoint was slow or down: the backlog is held in memory, not in Kafka"
        )
    return None


def remote_spec(url: str) -> dict[str, Any]:
    """The HTTP subscriber: MSM's default retry policy (5 attempts, 1 s doubling), no
    health_check, a 5 s timeout well above the injected latency."""
    return {
        "events": [EVENT_TYPE],
        "endpoint": url,
        "max_in_flight": MAX_IN_FLIGHT,
        "timeout": "5s",
        "retry": {"max_attempts": 5, "backoff": "exponential", "initial": "1s", "max": "1m"},
    }


class Sampler:
    """Samples RSS and lag once a second on a thread; :attr:`phase` labels what follows."""

    def __init__(self, h: Harness, bootstrap: str) -> None:
        self.phase = "start"
        self.samples: list[Sample] = []
        self._h, self._admin = h, open_admin(bootstrap)
        names = TopicNames(h.topology.namespace)
        self._group, self._topic = f"{names.namespace}.delivery", names.sub(REMOTE)
        self._began = time.monotonic()
        self._stop = threading.Event()

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self._loop, name="chaos-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(15)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            at = time.monotonic() - self._began
            self.samples.append(Sample(at, self.phase, self._rss(), self._lag()))

    def _rss(self) -> float | None:
        pid = self._h.workers.procs["delivery"].pid
        try:
            return rss_mb(Path(f"/proc/{pid}/status").read_text(encoding="utf-8"))
        except OSError:
            return None

    def _lag(self) -> int | None:
        try:
            report = collect_lag(self._admin, [self._group], timeout_s=3.0)
        except Exception:  # a missed sample, not a failed scenario
            return None
        for group in report.groups:
            for topic in group.topics:
                if topic.topic == self._topic:
                    return topic.lag
        return None


def dead_letters(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (high minus low watermark over its partitions)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-dlq-count"})
    try:
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


@dataclass(frozen=True)
class Run:
    """What driving the phases left behind, for the checks and the report."""

    sent: Sent
    drain_s: float | None
    samples: list[Sample]
    dead_letters: int


def slow_endpoint(ctx: ChaosContext) -> ScenarioResult:
    """Healthy, slow, unavailable (503 + Retry-After), healed: 0 lost for every subscriber,
    nothing dead-lettered, the backlog in Kafka and the delivery worker's memory flat."""
    rate = ctx.seconds(150, 80)
    phases: list[tuple[Mode, float]] = [
        (HEALTHY, ctx.seconds(20, 5)),
        (slow(*LATENCY_MS), ctx.seconds(60, 10)),
        (unavailable(*RETRY_AFTER_S), ctx.seconds(30, 8)),
    ]
    keys, partitions = int(ctx.seconds(64, 16)), 6
    subscribers = {**SUBSCRIBERS, REMOTE: False}
    server = EndpointServer(ctx.work_dir / "ledger")
    started = time.time_ns()
    with (
        server.running() as srv,
        chaos_pipeline(
            ctx.work_dir,
            ctx.bootstrap,
            ctx.say,
            partitions=partitions,
            extra={REMOTE: remote_spec(srv.url())},
        ) as h,
    ):
        h.checked = subscribers
        run = _drive(ctx, h, srv, phases, Generator(h.publisher, rate, keys))
        checks = check(run.sent.published, h.ledger.executions, subscribers)
        exits, bad_lines = list(h.workers.exits), h.ledger.bad_lines
    summary = summarize(run.samples)
    settings = _settings(rate, phases, keys, partitions)
    settings.update(_measured(run, summary, server.snapshot(), phases))
    notes = [f"{bad_lines} unreadable ledger lines"] if bad_lines else []
    notes.append("timeline (s, phase, delivery RSS MB, remote lag): " + _timeline(run.samples))
    failures = _failures(summary, run.dead_letters)
    return ScenarioResult(
        "slow-endpoint", started, checks, [], settings, exits, run.drain_s, notes, failures
    )


def _drive(
    ctx: ChaosContext,
    h: Harness,
    server: EndpointServer,
    phases: list[tuple[Mode, float]],
    gen: Generator,
) -> Run:
    """The phases under load, sampled; then healed, publishing stopped, drained."""
    sampler = Sampler(h, ctx.bootstrap)
    with sampler.running():
        with gen.running():
            for mode, seconds in phases:
                server.mode, sampler.phase = mode, mode.name
                ctx.say(f"endpoint {mode.name} for {seconds:.0f} s")
                load_for(h, gen, seconds)
        server.mode = HEALED
        sampler.phase = HEALED.name
        sent = gen.result()
        ctx.say(f"published {len(sent.published)}; endpoint healed, draining")
        names = list(h.checked)
        drain_s = drain(h, sent.published, ctx.seconds(90, 60), ctx.seconds(900, 300), names)
        time.sleep(ctx.seconds(5, 2))  # repeats may trail the last first execution
    h.ledger.poll()
    h.workers.supervise()
    dlq = dead_letters(ctx.bootstrap, TopicNames(h.topology.namespace).dlq(REMOTE))
    return Run(sent, drain_s, sampler.samples, dlq)


def _settings(
    rate: float, phases: list[tuple[Mode, float]], keys: int, partitions: int
) -> dict[str, str]:
    timeline = ", ".join(f"{mode.name} {seconds:.0f} s" for mode, seconds in phases)
    return {
        "rate": f"{rate:.0f} events/s, open loop",
        "keys": f"{keys} (per-key seq), {partitions} partitions",
        "faults": f"endpoint {timeline}, then healthy and publishing stops (drain)",
        "slow": f"{LATENCY_MS[0]}-{LATENCY_MS[1]} ms before each 200",
        "unavailable": "503 with Retry-After " + " or ".join(f"{s} s" for s in RETRY_AFTER_S),
        "subscribers": "plain, ordered (handlers); remote: HTTP endpoint, max_in_flight "
        f"{MAX_IN_FLIGHT}, timeout 5 s, 5 attempts (1 s doubling, max 1 m), no health_check",
    }


def _measured(
    run: Run, summary: list[PhaseSummary], stats: Stats, phases: list[tuple[Mode, float]]
) -> dict[str, str]:
    sent = run.sent
    out = {
        "published": f"{len(sent.published)} acknowledged in {sent.seconds:.0f} s, "
        f"{sent.refused} refused, worst send {sent.behind_ms:.0f} ms behind schedule",
    }
    seconds = {mode.name: s for mode, s in phases}
    for p in summary:
        rss = "?" if p.rss_max_mb is None else f"{p.rss_max_mb:.0f} MB"
        lag = "?" if p.lag_max is None else str(p.lag_max)
        line = f"delivery RSS peak {rss}, remote lag peak {lag}"
        if p.phase in seconds:
            accepted = stats.count(200, p.phase) / seconds[p.phase]
            line += f", endpoint accepted {accepted:.0f}/s"
        out[f"phase {p.phase} ({p.seconds:.0f} s sampled)"] = line
    out["endpoint saw"] = (
        f"{stats.requests} requests: {stats.count(200)} accepted, {stats.count(503)} answered "
        f"503; at most {stats.peak_in_flight} at once; highest attempt accepted "
        f"{stats.max_attempt}"
    )
    out["dead-lettered (remote)"] = str(run.dead_letters)
    return out


def _failures(summary: list[PhaseSummary], dlq: int) -> list[str]:
    by_phase = {p.phase: p for p in summary}
    healthy = by_phase.get(HEALTHY.name)
    faults = [by_phase[n].rss_max_mb for n in ("slow", "unavailable") if n in by_phase]
    peak = max((f for f in faults if f is not None), default=None)
    found = []
    problem = memory_problem(healthy.rss_max_mb if healthy else None, peak)
    if problem:
        found.append(problem)
    if dlq:
        found.append(f"{REMOTE}: {dlq} tasks dead-lettered during an outage that said Retry-After")
    return found


def _timeline(samples: list[Sample]) -> str:
    def cell(s: Sample) -> str:
        rss = "?" if s.rss_mb is None else f"{s.rss_mb:.0f}"
        return f"{s.at_s:.0f} {s.phase} {rss} {'?' if s.lag is None else s.lag}"

    return "; ".join(cell(s) for s in samples[::5])
