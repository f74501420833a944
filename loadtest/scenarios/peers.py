"""Scenario 4 (and Celery ETA for 5): Celery and Dramatiq on Redis doing MSM's job.

Same machine, same payloads (:func:`loadtest.payloads.plan`), same no-op handler writing the
same ledger. For each peer: a fresh redis-server, its worker as its docs say to run it, then
open-loop steps (fixed-rate windows, rate multiplied while the worker keeps up, then bisected;
see :mod:`loadtest.peer_steps`), latency at half the sustained rate, and for Celery the
lateness of ETA tasks (1 s and 10 s) under light load. Latencies count from each event's
*intended* send time, so a publisher or broker that falls behind shows up in them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtest.ledger import Run
from loadtest.model import BenchContext, Result, Series
from loadtest.peer_steps import RateSearch, Step
from loadtest.peer_workers import (
    BacklogSampler,
    LedgerTail,
    Peer,
    celery_peer,
    dramatiq_peer,
    publish,
    start_worker,
    stop_worker,
)
from loadtest.redis_server import redis_server
from loadtest.stats import (
    SERIES_LATENESS,
    SERIES_STEPS,
    SERIES_TARGET,
    completion_rate,
    latency,
    run_latencies,
    run_series,
)

START_RATE = 200.0  # events/s of the first step
ETA_RATE = 50.0  # events/s: light load for the ETA rows
READY_TIMEOUT_S = 90.0
LAG_SERIES = "lag.redis"


@dataclass(frozen=True)
class Window:
    step: Step
    runs: list[Run]  # ledger runs of this window's events
    start_ns: int


def run(ctx: BenchContext) -> list[Result]:
    results: list[Result] = []
    for index, make in enumerate((celery_peer, dramatiq_peer)):
        base = ctx.work_dir / "peers"
        with redis_server(base) as server:
            peer = make(server.url)
            results += _bench(ctx, peer, server.url, base / peer.name, index)
    return results


def _bench(ctx: BenchContext, peer: Peer, url: str, work: Path, index: int) -> list[Result]:
    ledger_dir = work / "ledger"
    shutil.rmtree(ledger_dir, ignore_errors=True)
    ledger_dir.mkdir(parents=True)
    window_s = ctx.seconds(20.0, 3.0)
    search = RateSearch(
        START_RATE,
        factor=ctx.seconds(2.0, 4.0),
        refine=int(ctx.seconds(2, 0)),
        max_steps=int(ctx.seconds(10, 2)),
    )
    phases = 3 if peer.name == "celery" else 2  # rate search, latency, (ETA)

    def progress(what: str, phase: int, within: float = 0.0) -> None:
        ctx.progress(f"peers: {peer.name} {what}", (index + (phase + within) / phases) / 2)

    tail, sampler = LedgerTail(ledger_dir), BacklogSampler(url, peer.queue_keys)
    proc = start_worker(peer, url, ledger_dir, work / "worker.log")
    try:
        progress("starting worker", 0)
        _wait_ready(peer, tail, proc.poll, work / "worker.log")
        while (rate := search.next_rate()) is not None:
            progress(f"step {rate:.0f}/s", 0, min(len(search.steps) / 8, 0.9))
            search.record(_window(peer, tail, sampler, rate, window_s).step)
        best = search.best
        half = 0.5 * (best.target if best else min(s.target for s in search.steps))
        progress(f"latency at {half:.0f}/s", 1)
        measured = _window(peer, tail, sampler, half, window_s)
        results = [_peer_result(peer, search, measured)]
        if peer.name == "celery":
            for n, delay_s in enumerate((1, int(ctx.seconds(10, 2)))):
                progress(f"ETA {delay_s} s", 2, n / 2)
                results.append(_eta(peer, tail, sampler, delay_s, ctx.seconds(20.0, 2.0)))
        return results
    finally:
        stop_worker(proc)
        sampler.close()


def _wait_ready(peer: Peer, tail: LedgerTail, exited: Callable[[], int | None], log: Path) -> None:
    """Send one probe event and wait for the handler to record it (the worker is consuming)."""
    probe = f"probe-{peer.name}-{time.time_ns()}"
    peer.send({"id": probe, "seq": -1, "sent_ns": time.time_ns(), "delay_ms": 0, "blob": ""}, None)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(r.event_id == probe for r in tail.poll()):
            return
        if exited() is not None:
            break
        time.sleep(0.2)
    text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{peer.name} worker did not run the probe event:\n{text}")


def _window(
    peer: Peer,
    tail: LedgerTail,
    sampler: BacklogSampler,
    rate: float,
    seconds: float,
    delay_ms: int = 0,
) -> Window:
    """One open-loop window at ``rate``, then wait for its events (drop the rest if stuck)."""
    count = max(1, round(rate * seconds))
    start_ns = time.time_ns() + 100_000_000
    end_ns = start_ns + round(seconds * 1e9)
    sampler.start()
    try:
        cpu = time.process_time()
        offered = publish(peer, rate, seconds, start_ns, delay_ms)
        cpu_us = (time.process_time() - cpu) / count * 1e6
        time.sleep(max(0.0, (end_ns - time.time_ns()) / 1e9))
    finally:
        backlog = sampler.stop()
    runs = _collect(
        peer, tail, sampler, start_ns, end_ns, count, max(5.0, seconds) + delay_ms / 1e3
    )
    completed = completion_rate(
        runs, start_ns + delay_ms * 1_000_000, end_ns + delay_ms * 1_000_000
    )
    step = Step(rate, offered, completed, backlog, count - len(runs), cpu_us)
    return Window(step, runs, start_ns)


def _collect(
    peer: Peer,
    tail: LedgerTail,
    sampler: BacklogSampler,
    start_ns: int,
    end_ns: int,
    count: int,
    timeout_s: float,
) -> list[Run]:
    runs: list[Run] = []
    deadline = time.monotonic() + timeout_s
    while len(runs) < count and time.monotonic() < deadline:
        runs += [r for r in tail.poll() if start_ns <= r.sent_ns < end_ns]
        time.sleep(0.1)
    if len(runs) < count:  # stuck behind: drop the backlog, take what still comes in
        sampler.purge(peer.purge_keys)
        quiet_since, stop_at = time.monotonic(), time.monotonic() + 30
        while time.monotonic() - quiet_since < 1.0 and time.monotonic() < stop_at:
            new = [r for r in tail.poll() if start_ns <= r.sent_ns < end_ns]
            if new:
                runs, quiet_since = runs + new, time.monotonic()
            time.sleep(0.1)
    return runs


def _peer_result(peer: Peer, search: RateSearch, measured: Window) -> Result:
    best, step = search.best, measured.step
    started, finished = run_latencies(measured.runs)
    series: dict[str, Series] = run_series(measured.runs, measured.start_ns)
    series[LAG_SERIES] = step.backlog
    series[SERIES_TARGET] = [
        (0.0, step.target),
        (step.backlog[-1][0] if step.backlog else 0, step.target),
    ]
    series[SERIES_STEPS] = [(s.target, s.completed) for s in search.steps]
    series["steps_offered"] = [(s.target, s.offered) for s in search.steps]
    series["steps_backlog_end"] = [
        (s.target, s.backlog[-1][1] if s.backlog else 0.0) for s in search.steps
    ]
    limited = any(s.publisher_limited for s in search.steps)
    notes = f"{peer.config}; redis-server without persistence; latency at 50 % of sustained"
    if best is None:
        notes += "; no step kept up (latency at half the lowest step)"
    if limited:
        notes += "; the publisher could not offer some step's rate (sustained may be a floor)"
    return Result(
        scenario="peers",
        system=peer.name,
        label="no-op handler",
        throughput=best.completed if best else None,
        target_rate=step.target,
        started=started,
        finished=finished,
        extra={
            "sustained_target": best.target if best else 0.0,
            "steps": float(len(search.steps)),
            "publisher_limited": float(limited),
            "offered_max": max(s.offered for s in search.steps),
            "publish_cpu_us": (best or step).publish_cpu_us,
            "lost": float(step.lost),
        },
        series=series,
        notes=notes,
    )


def _eta(
    peer: Peer, tail: LedgerTail, sampler: BacklogSampler, delay_s: int, seconds: float
) -> Result:
    """Celery tasks with ``eta`` = intended send + delay; lateness = started - due."""
    measured = _window(peer, tail, sampler, ETA_RATE, seconds, delay_ms=delay_s * 1000)
    due = [(r, r.sent_ns + delay_s * 1_000_000_000) for r in measured.runs]
    late = [(r.started_ns - d) / 1e6 for r, d in due]
    return Result(
        scenario="delays",
        system="celery-eta",
        label=f"Celery ETA {delay_s} s",
        throughput=None,
        target_rate=ETA_RATE,
        started=latency(late),
        finished=latency((r.finished_ns - d) / 1e6 for r, d in due),
        extra={
            "early": float(sum(1 for x in late if x < 0)),
            "delay_s": float(delay_s),
            "lost": float(measured.step.lost),
        },
        series={
            SERIES_LATENESS: [
                ((d - measured.start_ns) / 1e9, x) for (_, d), x in zip(due, late, strict=True)
            ]
        },
        notes=f"{peer.config}; lateness = handler start - (intended send + delay), light load",
    )
