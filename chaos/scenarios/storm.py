"""Scenario 3: a rebalance storm. Extra workers join and leave every few seconds on top of the
per-layer pipeline, so every layer's consumer group keeps rebalancing under load.

Each step starts an extra worker (all layers, or one) or stops one: mostly SIGTERM (a clean
leave: its partitions should move without replaying finished work), sometimes SIGKILL (they
move once its session expires). New workers are not waited for, so steps land mid-join and
stops can hit a worker still starting. Promises: 0 lost, ordered subscribers keep order.
Repeats are allowed (at least once) and sorted in the notes by what became of the worker that
ran the first run: a SIGTERMed worker still starts handlers until it has left its groups, and
the partition's next owner may run those again (their done records can land after it read
them; see pipeline/agents/execution_dedup.py).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chaos.checker import Kill, busy_at, check
from chaos.drive import drain, load_for
from chaos.generator import Generator
from chaos.harness import SUBSCRIBERS, Harness, chaos_pipeline
from chaos.ledger import Execution
from chaos.model import ChaosContext, ScenarioResult
from pipeline.topology.topics import LAYERS

SEED = 3  # the churn is random but repeatable
MOST_EXTRAS = 3  # extra workers alive at once, at most
KILL_SHARE = 0.25  # stops that are SIGKILL rather than SIGTERM
SINGLE_SHARE = 0.5  # starts that run one (random) layer rather than all
# An extra takes seconds to start (~2 s per layer joining, one layer after another), so steps
# lean to starting and stop the oldest extra most of the time: most extras live long enough to
# join their groups. The rest of the stops pick any extra, so some hit a worker mid-join.
START_SHARE = 0.7  # steps that start an extra when there is room for one
OLDEST_SHARE = 0.75
WORK_MS = 2.0  # handler time per task, so some are in flight when a worker leaves
ALL = "all"

Action = Literal["start", "stop", "kill"]
JOINED = re.compile(r"Joined group '([^']+)' \(generation (\d+)\)")


@dataclass(frozen=True)
class Step:
    """One churn step: start extra ``name`` running ``layers``, or stop/kill it."""

    action: Action
    name: str
    layers: str = ALL  # "all" or one layer

    @property
    def target(self) -> str:
        """How the fault reads in the report, e.g. ``extra-3 all (SIGTERM)``."""
        how = {"stop": " (SIGTERM)", "kill": " (SIGKILL)"}.get(self.action, "")
        return f"{self.name} {self.layers}{how}"


def churn(seed: int, steps: int, most: int = MOST_EXTRAS) -> list[Step]:
    """``steps`` random steps keeping 0..``most`` extras alive, then SIGTERMs for those left,
    so the storm ends on the base pipeline. Deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable churn, not a secret
    alive: dict[str, str] = {}  # name -> layers
    plan: list[Step] = []
    for _ in range(steps):
        if not alive or (len(alive) < most and rng.random() < START_SHARE):
            layers = rng.choice(LAYERS) if rng.random() < SINGLE_SHARE else ALL
            name = f"extra-{sum(s.action == 'start' for s in plan) + 1}"
            alive[name] = layers
            plan.append(Step("start", name, layers))
        else:
            name = next(iter(alive)) if rng.random() < OLDEST_SHARE else rng.choice(list(alive))
            action: Action = "kill" if rng.random() < KILL_SHARE else "stop"
            plan.append(Step(action, name, alive.pop(name)))
    plan += [Step("stop", name, layers) for name, layers in alive.items()]
    return plan


def rebalances(logs: Iterable[str]) -> dict[str, int]:
    """Per consumer group, the generations the workers' logs joined beyond the first: each is
    one rebalance of that group."""
    generations: dict[str, set[int]] = {}
    for text in logs:
        for group, generation in JOINED.findall(text):
            generations.setdefault(group, set()).add(int(generation))
    return {group: len(seen) - 1 for group, seen in sorted(generations.items())}


def repeats_by_cause(kills: Sequence[Kill], executions: Iterable[Execution]) -> dict[str, int]:
    """Repeats (runs of an event after its first, per subscriber) by what happened to the
    process that ran it first. More telling than the checker's "latest kill between": in a storm
    that is often some other worker's stop. A SIGTERMed worker keeps starting handlers until it
    leaves its groups; a repeat of such a run has no kill between its runs at all."""
    stops = {k.pid: k for k in kills}
    runs: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    for e in executions:
        runs[(e.subscriber, e.event_id)].append(e)
    causes: Counter[str] = Counter()
    for same in runs.values():
        if len(same) > 1:
            first = min(same, key=lambda e: e.started_ns)
            causes[_cause(first, stops.get(first.pid))] += len(same) - 1
    return dict(sorted(causes.items()))


def _cause(first: Execution, stop: Kill | None) -> str:
    if stop is None:
        return "first run by a worker not stopped (a rebalance)"
    if "(SIGKILL)" in stop.target:
        return "first run by a SIGKILLed extra"
    if first.started_ns >= stop.killed_ns:
        return "first run by a SIGTERMed extra after the signal"
    return "first run by a SIGTERMed extra before the signal"


def _apply(h: Harness, step: Step, odd: list[str]) -> None:
    """Do one step; record a stop as a :class:`Kill`, and a stop that did not exit 0 in ``odd``."""
    if step.action == "start":
        layers = None if step.layers == ALL else step.layers
        proc = h.workers.start_extra(step.name, layers)
        h.say(f"+ {step.name} ({step.layers}, pid {proc.pid}); {len(h.workers.extras)} extras")
        return
    if step.name not in h.workers.extras:  # exited on its own: supervise() recorded it
        return
    pid, at, code = h.workers.stop_extra(step.name, kill=step.action == "kill")
    h.kills.append(Kill(step.target, pid, at))
    h.say(f"- {step.target} pid {pid} exited {code}; {len(h.workers.extras)} extras")
    if step.action == "stop" and code != 0:
        odd.append(f"{step.target} (pid {pid}) exited {code} after SIGTERM")


def _storm(h: Harness, gen: Generator, plan: list[Step], every_s: float) -> list[str]:
    """Run the plan, one step every ``every_s`` (a slow stop eats into the next wait)."""
    odd: list[str] = []
    due = time.monotonic()
    for step in plan:
        _apply(h, step, odd)
        due += every_s
        load_for(h, gen, max(0.0, due - time.monotonic()))
    return odd


def rebalance_storm(ctx: ChaosContext) -> ScenarioResult:
    """Extra workers join and leave every few seconds under load: 0 lost, order kept."""
    rate = ctx.seconds(200, 100)
    every_s = ctx.seconds(3.0, 2.5)
    storm_s = ctx.seconds(180, 25)
    calm_s = ctx.seconds(20, 5)  # load before the storm and after it
    keys, partitions = int(ctx.seconds(64, 16)), 6
    delays = (500, 5000) if not ctx.smoke else (500, 2000)
    plan = churn(SEED, int(storm_s / every_s))
    settings = {
        "rate": f"{rate:.0f} events/s, open loop",
        "keys": f"{keys} (per-key seq), {partitions} partitions",
        "delayed": f"every 10th event, {delays[0]}-{delays[1]} ms",
        "faults": f"one worker per layer throughout; on top, {len(plan)} churn steps one every "
        f"{every_s:.1f} s (seed {SEED}): start an extra worker ({START_SHARE:.0%} of "
        f"steps with room; all layers, or {SINGLE_SHARE:.0%} of the time one random layer; not "
        f"waited for) or stop one (the oldest {OLDEST_SHARE:.0%} of the time; "
        f"{KILL_SHARE:.0%} SIGKILL, else SIGTERM), 0-{MOST_EXTRAS} extras alive; the extras "
        f"left are SIGTERMed at the end; {calm_s:.0f} s of calm load before and after",
        "subscribers": "plain (unordered), ordered (ordered: true); both dedup_window 1h",
        "handler work": f"{WORK_MS:.0f} ms (asyncio.sleep after recording)",
    }
    with chaos_pipeline(
        ctx.work_dir, ctx.bootstrap, ctx.say, partitions=partitions, work_ms=WORK_MS
    ) as h:
        gen = Generator(h.publisher, rate, keys, delayed_every=10, delays_ms=delays)
        started = time.time_ns()
        with gen.running():
            load_for(h, gen, calm_s)
            odd = _storm(h, gen, plan, every_s)
            load_for(h, gen, calm_s)
        sent = gen.result()
        ctx.say(f"published {len(sent.published)} ({sent.refused} refused); draining")
        drain_s = drain(h, sent.published, ctx.seconds(60, 30), ctx.seconds(900, 300))
        time.sleep(ctx.seconds(10, 3))  # repeats may trail the last first execution
        h.ledger.poll()
        h.workers.supervise()
        checks = check(sent.published, h.ledger.executions, SUBSCRIBERS, h.kills)
        exits = list(h.workers.exits)
        kills = list(h.kills)
        groups = rebalances(_logs(ctx.work_dir))
    settings["published"] = (
        f"{len(sent.published)} acknowledged in {sent.seconds:.0f} s, {sent.refused} refused, "
        f"worst send {sent.behind_ms:.0f} ms behind schedule"
    )
    notes = _notes(h, kills, groups, odd)
    failures = [] if any(groups.values()) else ["no consumer group rebalanced: no storm"]
    return ScenarioResult(
        "rebalance-storm", started, checks, kills, settings, exits, drain_s, notes, failures
    )


def _logs(work_dir: Path) -> list[str]:
    return [p.read_text("utf-8", "replace") for p in sorted(work_dir.glob("*.log"))]


def _notes(
    h: Harness,
    kills: Sequence[Kill],
    groups: dict[str, int],
    odd: list[str],
) -> list[str]:
    per_group = ", ".join(f"{g.rsplit('.', 1)[-1]} {n}" for g, n in groups.items())
    causes = repeats_by_cause(kills, h.ledger.executions)
    notes = [
        f"{sum(groups.values())} rebalances seen in the worker logs ({per_group})",
        "repeats (all subscribers), by the fate of the first run's worker: "
        + (", ".join(f"{cause}: {n}" for cause, n in causes.items()) or "none"),
        *odd,
    ]
    if h.ledger.bad_lines:
        notes.append(f"{h.ledger.bad_lines} unreadable ledger lines")
    busy = [k for k in kills if busy_at(k, h.ledger.executions) is not None]
    notes.append(f"{len(busy)} of {len(kills)} stopped extras had run handlers")
    return notes
