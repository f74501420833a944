"""Kafka's own perf tools (ProducerPerformance, ConsumerPerformance) from the broker's jars.

They give the machine's ceiling without Python in the way. The producer sends the bench payload
mix (JSON lines of :func:`loadtest.payloads.plan`, picked at random by the tool) rather than a
fixed record size, so its records are the size MSM's are; the consumer reads them back.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtest.payloads import plan

JVM = ("java", "-Xmx512m")
PRODUCER_TOOL = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL = "org.apache.kafka.tools.ConsumerPerformance"
PAYLOAD_LINES = 1_000

_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th"
)


@dataclass(frozen=True)
class ProducerPerf:
    records: int
    records_per_s: float
    mb_per_s: float
    avg_latency_ms: float  # send -> ack, while saturated: queueing, not a latency floor
    p99_latency_ms: float


@dataclass(frozen=True)
class ConsumerPerf:
    records: int
    mb: float
    records_per_s: float  # over the whole run, joining the group included
    mb_per_s: float
    fetch_records_per_s: float  # fetching only (rebalance time excluded): the ceiling
    fetch_mb_per_s: float
    rebalance_ms: float


def parse_producer(output: str) -> ProducerPerf:
    """The final summary line (the one with percentiles; the periodic ones have none)."""
    found = list(_PRODUCER_SUMMARY.finditer(output))
    if not found:
        raise ValueError(f"no ProducerPerformance summary in:\n{output[-2000:]}")
    m = found[-1]
    return ProducerPerf(
        int(m["records"]), float(m["rps"]), float(m["mbps"]), float(m["avg"]), float(m["p99"])
    )


def parse_consumer(output: str) -> ConsumerPerf:
    """The CSV row under the ``start.time, end.time, ...`` header."""
    lines = [line.strip() for line in output.splitlines()]
    for i, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            row = dict(zip(_split(line), _split(lines[i + 1]), strict=False))
            try:
                return ConsumerPerf(
                    records=int(row["data.consumed.in.nMsg"]),
                    mb=float(row["data.consumed.in.MB"]),
                    records_per_s=float(row["nMsg.sec"]),
                    mb_per_s=float(row["MB.sec"]),
                    fetch_records_per_s=float(row["fetch.nMsg.sec"]),
                    fetch_mb_per_s=float(row["fetch.MB.sec"]),
                    rebalance_ms=float(row["rebalance.time.ms"]),
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"unexpected ConsumerPerformance row {row}: {exc}") from exc
    raise ValueError(f"no ConsumerPerformance header in:\n{output[-2000:]}")


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.split(",")]


def write_payloads(path: Path, lines: int = PAYLOAD_LINES) -> float:
    """The bench payload mix as JSON lines for ``--payload-file``; returns the mean bytes."""
    payloads = [json.dumps(p.payload, separators=(",", ":")) for p in plan(1.0, lines, 0)]
    path.write_text("\n".join(payloads), encoding="utf-8")
    return sum(len(p) for p in payloads) / len(payloads)


def producer_perf(
    classpath: str, bootstrap: str, topic: str, records: int, payload_file: Path, timeout_s: float
) -> ProducerPerf:
    """As fast as it can (``--throughput -1``), acks=all like every producer in the bench."""
    args = [
        *("--topic", topic, "--num-records", str(records), "--throughput", "-1"),
        *("--payload-file", str(payload_file)),
        *("--producer-props", f"bootstrap.servers={bootstrap}", "acks=all"),
    ]
    return parse_producer(_java(classpath, PRODUCER_TOOL, args, timeout_s))


def consumer_perf(
    classpath: str, bootstrap: str, topic: str, records: int, timeout_s: float
) -> ConsumerPerf:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records)]
    return parse_consumer(_java(classpath, CONSUMER_TOOL, args, timeout_s))


def _java(classpath: str, tool: str, args: list[str], timeout_s: float) -> str:
    done = subprocess.run(
        [*JVM, "-cp", classpath, tool, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout
