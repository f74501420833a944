"""Scenario 5: delayed events under background load: how late, and never early.

Delayed events of each delay class are published over a spread window while immediate
background events keep flowing until the last delayed one is due. Each delayed event carries an
absolute ``deliver_at`` = its planned send time + its delay, so lateness is exact: handler start
minus deliver_at, end to end through all five layers (stricter than the scheduler's own
``msm_scheduler_lateness_seconds``, which stops at ``ready``). Early = started before
deliver_at, which must never happen.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from loadtest.model import BenchContext, Result
from loadtest.msm_run import Pipeline, msm_pipeline
from loadtest.payloads import EVENT_TYPE, Planned, plan
from loadtest.stats import SERIES_LATENESS, latency

FULL_DELAYS_MS = (1_000, 10_000, 60_000, 600_000)
SMOKE_DELAYS_MS = (1_000, 2_000)


def run(ctx: BenchContext) -> list[Result]:
    delays = SMOKE_DELAYS_MS if ctx.smoke else FULL_DELAYS_MS
    spread_s = ctx.seconds(60, 3)  # delayed events are published over this window
    per_class = int(ctx.seconds(300, 20))
    background = ctx.seconds(200, 50)  # immediate events/s, all along
    with msm_pipeline(ctx, workers=1, name="delays") as pipe:
        start_ns = time.time_ns() + 200_000_000
        end_ns = start_ns + int((spread_s + max(delays) / 1000 + 2) * 1e9)
        sent = _publish(ctx, pipe, delays, per_class, spread_s, background, start_ns, end_ns)
        ctx.progress("delays: draining", 0.95)
        for delay in delays:
            pipe.drain(_prefix(delay), sent[delay], ctx.seconds(60, 15))
        return [_row(pipe, delay, sent[delay], background) for delay in delays]


def _prefix(delay_ms: int) -> str:
    return f"d{delay_ms}"


def _publish(
    ctx: BenchContext,
    pipe: Pipeline,
    delays: tuple[int, ...],
    per_class: int,
    spread_s: float,
    background: float,
    start_ns: int,
    end_ns: int,
) -> dict[int, int]:
    """Both streams in planned-time order (open loop); how many delayed events per class."""
    streams = [
        _stream(plan(per_class / spread_s, per_class, start_ns, delay_ms=d, seed=100 + i), d)
        for i, d in enumerate(delays)
    ]
    count = int((end_ns - start_ns) / 1e9 * background)
    streams.append(_stream(plan(background, count, start_ns, seed=99), 0))
    sent = dict.fromkeys(delays, 0)
    total = (end_ns - start_ns) / 1e9
    last_report = 0.0
    for sent_ns, prefix, delay, payload in heapq.merge(*streams, key=lambda x: x[0]):
        wait = (sent_ns - time.time_ns()) / 1e9
        if wait > 0.001:
            time.sleep(wait)
        body = {**payload, "id": f"{prefix}-{payload['seq']}"}
        if delay:
            due = datetime.fromtimestamp((sent_ns + delay * 1_000_000) / 1e9, tz=UTC)
            pipe.publisher.publish(EVENT_TYPE, body, deliver_at=due, wait=False)
            sent[delay] += 1
        else:
            pipe.publisher.publish(EVENT_TYPE, body, wait=False)
        elapsed = (time.time_ns() - start_ns) / 1e9
        if elapsed - last_report >= 1:
            last_report = elapsed
            ctx.progress("delays: publishing and waiting", min(0.9, 0.9 * elapsed / total))
    pipe.publisher.flush()
    return sent


def _stream(
    events: Iterator[Planned], delay: int
) -> Iterator[tuple[int, str, int, dict[str, object]]]:
    prefix = _prefix(delay) if delay else "bg"
    return ((e.sent_ns, prefix, delay, e.payload) for e in events)


def _row(pipe: Pipeline, delay: int, sent: int, background: float) -> Result:
    pipe.ledger.poll()
    runs = pipe.ledger.runs(_prefix(delay))
    late = [(r.started_ns - r.sent_ns) / 1e6 - delay for r in runs]
    early = sum(1 for x in late if x < 0)
    lateness = latency(max(x, 0.0) for x in late)
    extra = {
        "early": float(early),
        "sent": float(sent),
        "lost": float(sent - len(runs)),
        "duplicates": float(pipe.ledger.duplicates),
    }
    if lateness is not None:
        extra["lateness_p99_ms"] = lateness.p99
    return Result(
        scenario="delays",
        system="msm",
        label=f"delay {delay / 1000:g} s, {background:g}/s background",
        started=lateness,
        extra=extra,
        series={SERIES_LATENESS: [(r.sent_ns / 1e9, x) for r, x in zip(runs, late, strict=True)]},
        notes="lateness = handler start - deliver_at, through all five layers",
    )
