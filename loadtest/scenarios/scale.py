"""Scenario 6: how MSM scales: fan-out, pending delayed events, worker processes.

Each point drains a burst: M events published at once (the Python client, acknowledged), then
the time until every delivery ran: deliveries per second of a backlog, the number a capacity
plan needs. Pending delayed events are written straight into the 10-minute delay tier, as the
scheduler itself would have, so a million of them cost seconds to set up; the worker then has
them assigned (paused, not buffered) while it drains the burst, and its RSS is sampled.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from confluent_kafka import Producer

from loadtest.model import BenchContext, Result
from loadtest.msm_run import Pipeline, msm_pipeline
from loadtest.payloads import EVENT_TYPE, SCHEMA, plan
from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.client.ids import new_event_id
from pipeline.topology.topics import TopicNames


def run(ctx: BenchContext) -> list[Result]:
    fanout = (1, 3) if ctx.smoke else (1, 10, 50)
    pending = (0, 5_000) if ctx.smoke else (0, 100_000, 1_000_000)
    workers = (1, 2) if ctx.smoke else (1, 2, 4)
    deliveries = int(ctx.seconds(20_000, 600))
    results: list[Result] = []
    for n in fanout:
        ctx.progress(f"scale: fan-out to {n}", 0.3 * fanout.index(n) / len(fanout))
        with msm_pipeline(ctx, subscribers=n, name=f"fanout{n}") as pipe:
            rate, rss = _drain(pipe, max(100, deliveries // n), n, ctx.seconds(300, 60))
        results.append(_row(f"fan-out to {n} subscribers", rate, rss, subscribers=n))
    for count in pending:
        ctx.progress(f"scale: {count:,} pending delayed", 0.3 + 0.4 * pending.index(count) / 3)
        with msm_pipeline(ctx, name=f"pending{count}") as pipe:
            _preload(ctx, pipe, count)
            time.sleep(ctx.seconds(10, 3))  # the scheduler takes its share and pauses
            rate, rss = _drain(pipe, deliveries, 1, ctx.seconds(300, 60))
        results.append(_row(f"{count:,} delayed events pending", rate, rss, pending=count))
    for k in workers:
        ctx.progress(f"scale: {k} worker processes", 0.7 + 0.3 * workers.index(k) / len(workers))
        with msm_pipeline(ctx, workers=k, name=f"workers{k}") as pipe:
            rate, rss = _drain(pipe, deliveries, 1, ctx.seconds(300, 60))
        results.append(_row(f"{k} worker processes", rate, rss, workers=k))
    return results


def _row(label: str, rate: float | None, rss_mb: float, **extra: float) -> Result:
    return Result(
        scenario="scale",
        system="msm",
        label=label,
        throughput=rate,
        extra={**{k: float(v) for k, v in extra.items()}, "rss_mb": rss_mb},
        notes="deliveries/s draining a burst; RSS of the largest worker after it",
    )


def _drain(
    pipe: Pipeline, events: int, subscribers: int, timeout_s: float
) -> tuple[float | None, float]:
    """(deliveries/s, worker RSS MB): publish ``events`` at once, wait for every delivery."""
    prefix = f"s{time.time_ns() % 10**9}"
    payloads = [{**e.payload, "id": f"{prefix}-{e.seq}"} for e in plan(1e6, events, 0)]
    counter = _Counter(pipe.ledger.directory, prefix)
    started = time.time_ns()
    for i in range(0, events, 1000):
        pipe.publisher.publish_many(EVENT_TYPE, payloads[i : i + 1000])
    expected = events * subscribers
    deadline = time.monotonic() + timeout_s
    while counter.count < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        counter.poll()
    rss = _worker_rss_mb(pipe)
    if counter.count < expected:
        return None, rss
    return expected / ((counter.last_finished_ns - started) / 1e9), rss


class _Counter:
    """Ledger lines of one prefix, every subscriber's (the pipeline's tail keeps one per id)."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self._directory, self._prefix = directory, f"{prefix}-"
        self._offsets: dict[Path, int] = {}
        self.count = 0
        self.last_finished_ns = 0

    def poll(self) -> None:
        for path in sorted(self._directory.glob("*.ledger")):
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self._offsets[path] = self._offsets.get(path, 0) + end
            for line in data[:end].decode("ascii", "replace").splitlines():
                parts = line.split(" ")
                if len(parts) >= 5 and parts[0].startswith(self._prefix):
                    self.count += 1
                    self.last_finished_ns = max(self.last_finished_ns, int(parts[3]))


def _worker_rss_mb(pipe: Pipeline) -> float:
    marker = str(pipe.topology.source_path)
    sizes = [
        p.memory_info().rss
        for p in psutil.Process().children(recursive=True)
        if marker in " ".join(p.cmdline())
    ]
    return max(sizes, default=0) / 2**20


def _preload(ctx: BenchContext, pipe: Pipeline, count: int) -> None:
    """``count`` events waiting in the 10-minute tier, due in an hour, as the scheduler writes."""
    if not count:
        return
    names = TopicNames(pipe.topology.namespace)
    topic = names.delay(min(t for t in pipe.topology.delay_tiers if t.total_seconds() >= 600))
    schema = load_schema(SCHEMA)
    value = wire.encode(schema, {"id": "p", "seq": 0, "sent_ns": 0, "delay_ms": 0, "blob": ""})
    now = time.time_ns() // 1_000_000
    fixed: dict[str, str | int] = {
        h.EVENT_TYPE: EVENT_TYPE,
        h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
        h.PUBLISHED_AT: now,
        h.DELIVER_AT: now + 3_600_000,
        h.TIERED_AT: now,
    }
    producer = Producer(
        {
            "bootstrap.servers": ctx.bootstrap,
            "linger.ms": 20,
            "log_level": 0,
            "partitioner": "murmur2_random",
        }
    )
    for i in range(count):
        event_id = new_event_id()
        headers: list[tuple[str, str | bytes | None]] = [*h.encode({**fixed, h.EVENT_ID: event_id})]
        while True:
            try:
                producer.produce(topic, value, event_id.encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 50_000 == 0:
            producer.poll(0)
            ctx.progress(f"scale: writing {count:,} pending", -1)
    if producer.flush(120) != 0:
        raise RuntimeError(f"{count} pending events were not all acknowledged")
