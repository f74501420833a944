"""Scenario 1: the ceilings everything else is a fraction of, on the same broker and payloads.

* Kafka's own perf tools (Java, from the broker's jars): producer, then consumer, of the bench
  payload mix; what this machine and broker can move at all.
* Raw confluent-kafka, one hop in Python (:mod:`loadtest.hop_confluent`): consume -> produce,
  the least one MSM layer could cost; throughput and latency at half of it.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.hop_bench import FULL_SECONDS, Hop, measure
from loadtest.kafka_tools import consumer_perf, producer_perf, write_payloads
from loadtest.model import BenchContext, Result
from loadtest.subproc import Proc
from loadtest.topics import PARTITIONS, throwaway, unique
from pipeline.broker import BrokerSettings, classpath

SMOKE_RECORDS = 2_000
FIRST_RECORDS = 500_000
MAX_RECORDS = 20_000_000
HOP_NOTES = (
    "python: confluent-kafka consume (up to 500 fetched) -> produce per record, no decoding, "
    "acks=all idempotent linger 1 ms, offsets auto-committed"
)


def run(ctx: BenchContext) -> list[Result]:
    return [
        *_perf_tools(ctx),
        *measure(ctx, Hop("ceilings", "confluent-kafka", _start_hop, HOP_NOTES)),
    ]


def _start_hop(ctx: BenchContext, src: str, dst: str, group: str, log: Path) -> Proc:
    args = ["--bootstrap", ctx.bootstrap, "--src", src, "--dst", dst, "--group", group]
    return Proc("loadtest.hop_confluent", args, log)


def _perf_tools(ctx: BenchContext) -> list[Result]:
    what = "kafka perf tools"
    ctx.progress(what, 0.0)
    jars = classpath(BrokerSettings())
    payloads = ctx.work_dir / "perf-payloads.txt"
    payloads.parent.mkdir(parents=True, exist_ok=True)
    mean_bytes = write_payloads(payloads)
    records = SMOKE_RECORDS if ctx.smoke else FIRST_RECORDS
    while True:  # grow the run until it lasts ~FULL_SECONDS: a short one is mostly JVM warm-up
        topic = unique("perf")
        timeout_s = max(300.0, records / 5_000)
        with throwaway(ctx.bootstrap, [topic], PARTITIONS):
            produced = producer_perf(jars, ctx.bootstrap, topic, records, payloads, timeout_s)
            lasted_s = produced.records / max(produced.records_per_s, 1.0)
            if ctx.smoke or lasted_s >= FULL_SECONDS / 2 or records >= MAX_RECORDS:
                ctx.progress(what, 0.7)
                consumed = consumer_perf(jars, ctx.bootstrap, topic, records, timeout_s)
                break
        ctx.progress(what, 0.3)
        records = round(min(MAX_RECORDS, max(2 * records, produced.records_per_s * FULL_SECONDS)))
    ctx.progress(what, 1.0)
    label = f"bench mix, mean {mean_bytes:.0f} B"
    return [
        Result(
            scenario="ceilings",
            system="kafka-perf-producer",
            label=label,
            throughput=produced.records_per_s,
            extra={
                "records": float(produced.records),
                "mb_per_s": produced.mb_per_s,
                "saturated_avg_latency_ms": produced.avg_latency_ms,
                "saturated_p99_latency_ms": produced.p99_latency_ms,
            },
            notes="ProducerPerformance --throughput -1, acks=all, Java client defaults",
        ),
        Result(
            scenario="ceilings",
            system="kafka-perf-consumer",
            label=label,
            throughput=consumed.fetch_records_per_s,
            extra={
                "records": float(consumed.records),
                "fetch_mb_per_s": consumed.fetch_mb_per_s,
                "with_join_records_per_s": consumed.records_per_s,
                "rebalance_ms": consumed.rebalance_ms,
            },
            notes="ConsumerPerformance over the producer's topic, fetch rate (group join excluded)",
        ),
    ]
