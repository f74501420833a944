"""What a scenario gets and gives back: plain data, so the report renders without a broker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaos.checker import Kill, SubscriberCheck


@dataclass(frozen=True)
class ChaosContext:
    smoke: bool  # seconds per fault, not a minute: checks the harness and the basic promise
    bootstrap: str
    work_dir: Path  # this scenario's scratch: topology, worker logs, ledgers
    say: Callable[[str], None]  # one progress line

    def seconds(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full


@dataclass(frozen=True)
class Exited:
    """A worker that died on its own (not killed by the scenario)."""

    target: str
    pid: int
    code: int
    at_ns: int
    tail: str


@dataclass
class ScenarioResult:
    name: str
    started_ns: int
    checks: list[SubscriberCheck]
    kills: list[Kill]
    settings: dict[str, str] = field(default_factory=dict)  # rate, keys, ... for the report
    exits: list[Exited] = field(default_factory=list)
    drain_s: float | None = None  # publishing end -> all executed; None: timed out
    notes: list[str] = field(default_factory=list)
    # scenario-specific broken promises (a p99 regression, a 202 while Kafka was down, ...)
    failures: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every broken promise; empty means the scenario passed."""
        found = [p for c in self.checks for p in c.problems()]
        found += [f"{e.target} worker (pid {e.pid}) exited {e.code} on its own" for e in self.exits]
        found += self.failures
        if not any(c.published for c in self.checks):
            found.append("nothing was published")
        return found


@dataclass
class Outcome:
    """One scenario as run: its result, or the traceback that ended it."""

    name: str
    status: str  # "ok" (ran; see problems), "failed" (raised)
    seconds: float
    result: ScenarioResult | None = None
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok" and self.result is not None and not self.result.problems()
