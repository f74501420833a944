"""Driving a scenario: keep the load running and the workers supervised, then wait out the drain."""

from __future__ import annotations

import time
from collections.abc import Iterable

from chaos.checker import Published
from chaos.generator import Generator
from chaos.harness import Harness


def load_for(h: Harness, gen: Generator, seconds: float) -> None:
    """Let the load run, replacing workers that die on their own and reading the ledger."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        for gone in h.workers.supervise():
            h.say(f"[red]{gone.target} worker (pid {gone.pid}) exited {gone.code}[/red]")
        h.ledger.poll()
    h.say(f"{gen.sent} sent, {len(h.ledger.executions)} executions recorded")


def drain(
    h: Harness,
    published: list[Published],
    idle_s: float,
    cap_s: float,
    subscribers: Iterable[str] | None = None,
) -> float | None:
    """Seconds until every subscriber (default: the harness's checked ones) ran every
    acknowledged event; None when none ran for ``idle_s`` (stuck: what is missing is lost) or
    after ``cap_s``. A backlog still moving is waited for: slow is not lost."""
    began = last_progress = said = time.monotonic()
    wanted = {p.event_id for p in published}
    names = h.checked if subscribers is None else subscribers
    remaining = {sub: set(wanted) for sub in names}
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
