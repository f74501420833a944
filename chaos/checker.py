"""What the ledger says about MSM's promises, per subscriber: pure, so it is unit-tested.

- **lost**: acknowledged events never executed (at least once is broken).
- **duplicated**: executions beyond the first per event (effectively once is bent); each is
  attributed to the latest kill between the event's first execution and the repeat, or counted
  as unexplained when no kill lies between (then no fault excuses it).
- **reordered** (ordered subscribers, events due now): per key, first executions whose ``seq``
  is below one already executed. Repeats do not count: a redelivery replays older events.
- **early**: executions of a delayed event that started before its ``deliver_at``.
- **unexpected**: events executed that the generator never saw acknowledged (a publish that
  failed on the client yet reached Kafka): not a fault, but reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from chaos.ledger import Execution

SAMPLES = 5  # ids kept per finding, for the report


@dataclass(frozen=True)
class Published:
    """An event Kafka acknowledged."""

    event_id: str
    key: str
    seq: int
    sent_ns: int
    deliver_at_ns: int = 0  # 0: due now


@dataclass(frozen=True)
class Kill:
    """One injected fault: ``target``'s process ``pid`` was killed at ``killed_ns``."""

    target: str  # e.g. the layer
    pid: int
    killed_ns: int
    restarted_ns: int = 0  # when its replacement was ready; 0: not restarted
    new_pid: int = 0

    @property
    def label(self) -> str:
        return f"{self.target} (pid {self.pid})"


@dataclass
class SubscriberCheck:
    subscriber: str
    ordered: bool
    published: int = 0
    executed: int = 0  # distinct acknowledged events executed at least once
    executions: int = 0  # ledger lines, repeats included
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    early: int = 0
    unexpected: int = 0
    duplicates_by_kill: dict[str, int] = field(default_factory=dict)
    unexplained_duplicates: int = 0
    # the longest time from a repeated event's first start to the kill that explains it: small
    # means "in flight at the kill"; seconds would mean the kill replayed finished work
    max_lead_ms: float = 0.0
    samples: dict[str, list[str]] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What breaks a promise (duplicates after kills do not: at least once allows them)."""
        found = []
        if self.lost:
            found.append(f"{self.subscriber}: {self.lost} lost")
        if self.ordered and self.reordered:
            found.append(f"{self.subscriber}: {self.reordered} reordered")
        if self.early:
            found.append(f"{self.subscriber}: {self.early} early")
        return found


def check(
    published: Sequence[Published],
    executions: Iterable[Execution],
    subscribers: Mapping[str, bool],
    kills: Sequence[Kill] = (),
) -> list[SubscriberCheck]:
    """One :class:`SubscriberCheck` per subscriber (name -> ordered), in the mapping's order."""
    by_sub: dict[str, list[Execution]] = defaultdict(list)
    for execution in executions:
        by_sub[execution.subscriber].append(execution)
    events = {p.event_id: p for p in published}
    return [
        _check_one(name, ordered, events, by_sub.get(name, []), kills)
        for name, ordered in subscribers.items()
    ]


def _check_one(
    name: str,
    ordered: bool,
    events: Mapping[str, Published],
    runs: list[Execution],
    kills: Sequence[Kill],
) -> SubscriberCheck:
    result = SubscriberCheck(name, ordered, published=len(events), executions=len(runs))
    runs = sorted(runs, key=lambda e: (e.started_ns, e.attempt))
    first: dict[str, Execution] = {}
    unexpected: set[str] = set()
    for run in runs:
        if run.event_id not in events:
            unexpected.add(run.event_id)
        elif run.event_id in first:
            _duplicate(result, first[run.event_id], run, kills)
        else:
            first[run.event_id] = run
        event = events.get(run.event_id)
        if event is not None and event.deliver_at_ns and run.started_ns < event.deliver_at_ns:
            result.early += 1
            late_by = (event.deliver_at_ns - run.started_ns) / 1e6
            _sample(result, "early", f"{run.event_id} ({late_by:.0f} ms before deliver_at)")
    result.executed = len(first)
    result.unexpected = len(unexpected)
    for event_id in events:
        if event_id not in first:
            result.lost += 1
            _sample(result, "lost", event_id)
    if ordered:
        _reorders(result, [first[i] for i in first if not events[i].deliver_at_ns])
    return result


def _duplicate(
    result: SubscriberCheck, first: Execution, again: Execution, kills: Sequence[Kill]
) -> None:
    result.duplicated += 1
    between = [k for k in kills if first.started_ns <= k.killed_ns <= again.started_ns]
    if not between:
        result.unexplained_duplicates += 1
        _sample(result, "unexplained duplicate", f"{again.event_id} attempt {again.attempt}")
        return
    kill = max(between, key=lambda k: k.killed_ns)
    result.duplicates_by_kill[kill.label] = result.duplicates_by_kill.get(kill.label, 0) + 1
    result.max_lead_ms = max(result.max_lead_ms, (kill.killed_ns - first.started_ns) / 1e6)


def _reorders(result: SubscriberCheck, firsts: list[Execution]) -> None:
    """``firsts`` are in start order; a key's seq must only grow along them."""
    highest: dict[str, int] = {}
    for run in firsts:
        top = highest.get(run.key, -1)
        if run.seq < top:
            result.reordered += 1
            _sample(result, "reordered", f"key {run.key}: seq {run.seq} after {top}")
        else:
            highest[run.key] = run.seq


def _sample(result: SubscriberCheck, kind: str, text: str) -> None:
    kept = result.samples.setdefault(kind, [])
    if len(kept) < SAMPLES:
        kept.append(text)


def busy_at(kill: Kill, executions: Iterable[Execution]) -> tuple[int, float] | None:
    """For a killed process that ran handlers: (how many it started in the second before the
    kill, ms from its last start to the kill); None if it ran none. Evidence the kill landed
    mid-stream, not in a lull."""
    starts = [
        e.started_ns for e in executions if e.pid == kill.pid and e.started_ns <= kill.killed_ns
    ]
    if not starts:
        return None
    last_second = sum(1 for s in starts if s >= kill.killed_ns - 1_000_000_000)
    return last_second, (kill.killed_ns - max(starts)) / 1e6
