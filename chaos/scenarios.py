"""The scenarios, by name, in the order a full run takes them.

Each is ``run(ctx) -> ScenarioResult``: it drives load and faults through a
:func:`chaos.harness.chaos_pipeline`, waits until every acknowledged event ran (or nothing
moves for a while), lets late repeats land, and hands the ledger to the checker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chaos.checker import Published, busy_at, check
from chaos.generator import Generator
from chaos.harness import SUBSCRIBERS, Harness, chaos_pipeline
from chaos.model import ChaosContext, ScenarioResult
from pipeline.topology.topics import LAYERS

Scenario = Callable[[ChaosContext], ScenarioResult]
DOWN_S = 2.0  # how long a killed worker stays down before its replacement starts
WORK_MS = 2.0  # handler time per task, so some are in flight when execution is killed


def kill_layers(ctx: ChaosContext) -> ScenarioResult:
    """SIGKILL each layer's worker in turn mid-stream and restart it: 0 lost, order kept,
    repeats only of tasks in flight at a kill (dedup skips finished ones)."""
    rate = ctx.seconds(200, 100)
    segment = ctx.seconds(60, 6)  # load between kills (and after the last restart)
    keys, partitions = int(ctx.seconds(64, 16)), 6
    delays = (500, 5000) if not ctx.smoke else (500, 2000)
    settings = {
        "rate": f"{rate:.0f} events/s, open loop",
        "keys": f"{keys} (per-key seq), {partitions} partitions",
        "delayed": f"every 10th event, {delays[0]}-{delays[1]} ms",
        "faults": f"SIGKILL each layer's worker after {segment:.0f} s of load, "
        f"down {DOWN_S:.0f} s, then a new one (until ready); {segment:.0f} s more at the end",
        "subscribers": "plain (unordered), ordered (ordered: true); both dedup_window 1h",
        "handler work": f"{WORK_MS:.0f} ms (asyncio.sleep after recording)",
    }
    with chaos_pipeline(
        ctx.work_dir, ctx.bootstrap, ctx.say, partitions=partitions, work_ms=WORK_MS
    ) as h:
        gen = Generator(h.publisher, rate, keys, delayed_every=10, delays_ms=delays)
        started = time.time_ns()
        with gen.running():
            for layer in LAYERS:
                _load_for(h, gen, segment)
                h.kill_and_restart(layer, DOWN_S)
            _load_for(h, gen, segment)
        sent = gen.result()
        ctx.say(f"published {len(sent.published)} ({sent.refused} refused); draining")
        drain_s = _drain(h, sent.published, ctx.seconds(60, 30), ctx.seconds(900, 300))
        time.sleep(ctx.seconds(10, 3))  # repeats may trail the last first execution
        h.ledger.poll()
        h.workers.supervise()
        checks = check(sent.published, h.ledger.executions, SUBSCRIBERS, h.kills)
        exits = list(h.workers.exits)
        kills = list(h.kills)
    settings["published"] = (
        f"{len(sent.published)} acknowledged in {sent.seconds:.0f} s, {sent.refused} refused, "
        f"worst send {sent.behind_ms:.0f} ms behind schedule"
    )
    notes = [f"{h.ledger.bad_lines} unreadable ledger lines"] if h.ledger.bad_lines else []
    for kill in kills:
        busy = busy_at(kill, h.ledger.executions)
        if busy is not None:
            notes.append(
                f"the killed {kill.label} started {busy[0]} handler runs in its last second, "
                f"the last {busy[1]:.0f} ms before the kill"
            )
    return ScenarioResult("kill-layers", started, checks, kills, settings, exits, drain_s, notes)


def _load_for(h: Harness, gen: Generator, seconds: float) -> None:
    """Let the load run, replacing workers that die on their own and reading the ledger."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        for gone in h.workers.supervise():
            h.say(f"[red]{gone.target} worker (pid {gone.pid}) exited {gone.code}[/red]")
        h.ledger.poll()
    h.say(f"{gen.sent} sent, {len(h.ledger.executions)} executions recorded")


def _drain(h: Harness, published: list[Published], idle_s: float, cap_s: float) -> float | None:
    """Seconds until every subscriber ran every acknowledged event; None when none ran for
    ``idle_s`` (stuck: what is missing is lost) or after ``cap_s``. A backlog still moving is
    waited for: slow is not lost."""
    began = last_progress = said = time.monotonic()
    wanted = {p.event_id for p in published}
    remaining = {sub: set(wanted) for sub in SUBSCRIBERS}
    for execution in h.ledger.executions:
        remaining.get(execution.subscriber, set()).discard(execution.event_id)
    while any(remaining.values()):
        now = time.monotonic()
        if now - last_progress > idle_s or now - began > cap_s:
            counts = ", ".join(f"{s}: {len(r)}" for s, r in remaining.items())
            h.say(f"[red]drain gave up after {now - began:.0f} s; missing {counts}[/red]")
            return None
        time.sleep(0.25)
        h.workers.supervise()
        before = sum(len(r) for r in remaining.values())
        for execution in h.ledger.poll():
            remaining.get(execution.subscriber, set()).discard(execution.event_id)
        if sum(len(r) for r in remaining.values()) < before:
            last_progress = time.monotonic()
        if any(remaining.values()) and time.monotonic() - said > 5:
            said = time.monotonic()
            h.say("waiting for " + ", ".join(f"{s}: {len(r)}" for s, r in remaining.items()))
    return time.monotonic() - began


SCENARIOS: dict[str, Scenario] = {"kill-layers": kill_layers}
