"""One hop (consume topic A, produce to topic B), any implementation, measured the same way.

Throughput: a backlog of N bench events is produced to A first, then the hop starts and drains
it; the rate is how fast the records arrive on B (start-up excluded, see hop_reader). A backlog
rather than a live feed, so the producer's speed on this 2-core machine does not cap the hop.
In a full run N is sized from a short probe run so the measurement lasts ~FULL_SECONDS on any
machine. Latency: the same hop process, then an open-loop feed at half that rate; the latency
is planned send -> consumed from B, the like-for-like floor for one MSM layer. The feed and this
reader cost CPU too: when the feed cannot keep to its schedule (the machine is saturated by
the measurement itself) the latency is taken again at half the load, and the row says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from loadtest.hop_reader import Drain, SinkReader
from loadtest.model import BenchContext, Result
from loadtest.stats import SERIES_P50, SERIES_P99, SERIES_THROUGHPUT, buckets, latency, percentile
from loadtest.subproc import Proc
from loadtest.topics import PARTITIONS, throwaway, unique

SMOKE_EVENTS = 2_000
PROBE_EVENTS = 200_000  # a backlog the probe reads for at most PROBE_SECONDS
PROBE_SECONDS = 5.0
FULL_SECONDS = 25.0  # per measurement in a full run
SMOKE_SECONDS = 3.0
MAX_EVENTS = 3_000_000
MIN_LATENCY_EVENTS = 200
BACKLOG_SEED, LATENCY_SEED = 7, 8  # different ids, so the phases cannot be mixed up
FEED_SATURATED_MS = 1_000.0  # the feed fell this far behind: it set the pace, not the hop
MAX_TRIES = 3  # latency at 50 %, else 25 %, else 12.5 % of the throughput

# (ctx, source topic, sink topic, consumer group, log file) -> the hop, running
Starter = Callable[[BenchContext, str, str, str, Path], Proc]


@dataclass(frozen=True)
class Hop:
    scenario: str  # Result.scenario
    system: str  # Result.system
    start: Starter
    notes: str = ""


def measure(ctx: BenchContext, hop: Hop) -> list[Result]:
    """Two rows: the throughput (no target rate) and the latency at half of it."""
    count = SMOKE_EVENTS if ctx.smoke else _calibrate(ctx, hop)
    with ExitStack() as stack:
        drain, reader, proc, src = _throughput(ctx, hop, stack, count, "throughput")
        fraction, tries = 0.5, 0
        while True:  # at a lower load if the feed itself could not keep to its schedule
            tries += 1
            points, feed = _latency(ctx, hop, reader, proc, src, drain.rate * fraction, tries)
            if feed.get("late_ms_max", 0.0) <= FEED_SATURATED_MS or tries == MAX_TRIES:
                break
            fraction /= 2
    received = sorted(x + ms / 1e3 for x, ms in points)
    span = received[-1] - received[0] if received else 0.0
    return [
        Result(
            scenario=hop.scenario,
            system=hop.system,
            label="one hop, drain a backlog",
            throughput=drain.rate,
            # 0: too short to time (smoke), the throughput is a lower bound with start-up
            extra={"events": float(count), "measured": float(drain.measured)},
            series={SERIES_THROUGHPUT: drain.per_second()},
            notes=hop.notes,
        ),
        Result(
            scenario=hop.scenario,
            system=hop.system,
            label=f"one hop, {fraction:.0%} of its throughput",
            throughput=(len(received) - 1) / span if span > 0 else None,
            target_rate=drain.rate * fraction,
            started=latency(ms for _, ms in points),
            extra={
                "load_fraction": fraction,
                # the feed's worst lateness against its plan: the latencies include it, as an
                # open-loop measurement must; above FEED_SATURATED_MS the load was halved
                "feed_late_ms_max": feed.get("late_ms_max", 0.0),
            },
            series={
                SERIES_P50: buckets(points, lambda v: percentile(sorted(v), 50)),
                SERIES_P99: buckets(points, lambda v: percentile(sorted(v), 99)),
            },
            notes="latency: planned send -> consumed from the hop's output topic"
            + ("" if fraction == 0.5 else "; the feed could not hold 50% on this machine"),
        ),
    ]


def _latency(
    ctx: BenchContext, hop: Hop, reader: SinkReader, proc: Proc, src: str, rate: float, tries: int
) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """An open-loop feed at ``rate`` through the running hop: latency points, feed report."""
    wanted = max(MIN_LATENCY_EVENTS, round(rate * ctx.seconds(FULL_SECONDS, SMOKE_SECONDS)))
    seed = LATENCY_SEED + tries  # each try its own ids: stragglers of the last are not counted
    with Proc(
        "loadtest.hop_feed",
        _feed_args(ctx, src, wanted, rate, seed),
        _log(ctx, hop, f"feed-latency-{tries}"),
        long_running=False,
    ) as feeder:

        def check() -> None:
            proc.check()
            feeder.check()

        points = reader.latencies(wanted, f"e{seed}-", check, _progress(ctx, hop, "latency"))
        feeder.wait(120)
    return points, _feed_report(feeder.log_path)


def _calibrate(ctx: BenchContext, hop: Hop) -> int:
    """Backlog size for ~FULL_SECONDS of draining, from a short probe on its own topics."""
    with ExitStack() as stack:
        drain, *_ = _throughput(ctx, hop, stack, PROBE_EVENTS, "probe", PROBE_SECONDS)
    return round(min(MAX_EVENTS, max(SMOKE_EVENTS, drain.rate * FULL_SECONDS)))


def _throughput(
    ctx: BenchContext,
    hop: Hop,
    stack: ExitStack,
    count: int,
    phase: str,
    max_s: float | None = None,
) -> tuple[Drain, SinkReader, Proc, str]:
    """Fresh topics, a backlog of ``count`` on the source, the hop started and drained.

    Everything it starts is left running on ``stack`` (the caller may measure more).
    """
    src, dst = unique(f"{hop.system}.a"), unique(f"{hop.system}.b")
    stack.enter_context(throwaway(ctx.bootstrap, [src, dst]))
    ctx.progress(f"{hop.system} one hop: {phase} backlog ({count} events)", 0.0)
    with Proc(
        "loadtest.hop_feed",
        _feed_args(ctx, src, count, 0.0, BACKLOG_SEED),
        _log(ctx, hop, f"feed-{phase}"),
        long_running=False,
    ) as backlog:
        backlog.wait(max(120.0, count / 5_000))
    reader = SinkReader(ctx.bootstrap, dst, PARTITIONS)
    stack.callback(reader.close)
    proc = hop.start(ctx, src, dst, unique(f"{hop.system}.group"), _log(ctx, hop, phase))
    stack.enter_context(proc)
    drain = reader.drain(count, proc.check, _progress(ctx, hop, phase), max_s)
    return drain, reader, proc, src


def _feed_args(ctx: BenchContext, topic: str, count: int, rate: float, seed: int) -> list[str]:
    return [
        *("--bootstrap", ctx.bootstrap, "--topic", topic, "--count", str(count)),
        *("--rate", repr(rate), "--seed", str(seed)),
    ]


def _feed_report(log_path: Path) -> dict[str, float]:
    """The JSON line the feed prints last (its duration and worst lateness)."""
    for line in reversed(log_path.read_text("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            return {k: float(v) for k, v in json.loads(line).items()}
    return {}


def _log(ctx: BenchContext, hop: Hop, what: str) -> Path:
    return ctx.work_dir / f"{hop.scenario}-{hop.system}-{what}.log"


def _progress(ctx: BenchContext, hop: Hop, phase: str) -> Callable[[float], None]:
    what = f"{hop.system} one hop: {phase}"
    return lambda fraction: ctx.progress(what, fraction)
