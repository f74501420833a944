"""Scenario 1: SIGKILL each layer's worker in turn mid-stream, then restart it."""

from __future__ import annotations

import time

from chaos.checker import busy_at, check
from chaos.drive import drain, load_for
from chaos.generator import Generator
from chaos.harness import SUBSCRIBERS, chaos_pipeline
from chaos.model import ChaosContext, ScenarioResult
from pipeline.topology.topics import LAYERS

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
                load_for(h, gen, segment)
                h.kill_and_restart(layer, DOWN_S)
            load_for(h, gen, segment)
        sent = gen.result()
        ctx.say(f"published {len(sent.published)} ({sent.refused} refused); draining")
        drain_s = drain(h, sent.published, ctx.seconds(60, 30), ctx.seconds(900, 300))
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
