"""What every scenario measures and returns, so one report can put them side by side.

A scenario is a function ``run(ctx: BenchContext) -> list[Result]``. Throughput is events per
second finished by the system under test; latencies are from the event's *intended* send time
(open loop: the generator's schedule, not when the send happened), so a stalled system cannot
hide its own queueing (no coordinated omission).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Series = list[tuple[float, float]]  # (seconds since the run started, value)


@dataclass(frozen=True)
class Latency:
    """Milliseconds from intended send to handler start (or finish)."""

    p50: float
    p95: float
    p99: float
    max: float
    count: int


@dataclass
class Result:
    scenario: str  # e.g. "ceiling", "faust", "msm", "peers", "delays", "scale"
    system: str  # e.g. "kafka-perf-producer", "confluent-kafka", "faust", "msm", "celery"
    label: str  # what this row is, for the report ("one hop, 1 KB", "fan-out 10", ...)
    throughput: float | None = None  # sustained events/s (deliveries/s for fan-out)
    target_rate: float | None = None  # the open-loop rate this row ran at, if one
    started: Latency | None = None  # intended send -> handler started
    finished: Latency | None = None  # intended send -> handler finished
    extra: dict[str, float] = field(default_factory=dict)  # e.g. rss_mb, early, lag_max
    series: dict[str, Series] = field(default_factory=dict)  # plots: name -> points
    notes: str = ""


@dataclass(frozen=True)
class BenchContext:
    smoke: bool  # seconds per scenario, not minutes: checks the harness, not the numbers
    out_dir: Path  # loadtest/results/<run>/
    bootstrap: str  # Kafka, the broker `msm broker start` runs
    work_dir: Path  # scratch: topologies, ledgers, logs
    progress: Callable[[str, float], None]  # (what, fraction done 0..1) for the rich display

    def seconds(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full
