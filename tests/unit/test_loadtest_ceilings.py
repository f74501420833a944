"""Parsing the Kafka perf tools' output and timing a drain, without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.hop_reader import Drain
from loadtest.kafka_tools import parse_consumer, parse_producer, write_payloads

PRODUCER_OUT = """\
116581 records sent, 23316.2 records/sec (11.55 MB/sec), 1210.3 ms avg latency, \
1873.0 ms max latency.
250000 records sent, 26990.2 records/sec (13.37 MB/sec), 1005.81 ms avg latency, 1873.00 ms max \
latency, 967 ms 50th, 1539 ms 95th, 1744 ms 99th, 1858 ms 99.9th.
"""

CONSUMER_OUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-29 17:08:55:611, 2026-11-29 17:08:56:457, 48.8281, 57.7165, 50000, 59101.6548, 351, \
495, 98.6427, 101010.1010
"""


def test_producer_summary_is_the_line_with_percentiles() -> None:
    perf = parse_producer(PRODUCER_OUT)
    assert perf.records == 250_000
    assert perf.records_per_s == pytest.approx(26990.2)
    assert perf.mb_per_s == pytest.approx(13.37)
    assert perf.avg_latency_ms == pytest.approx(1005.81)
    assert perf.p99_latency_ms == 1744


def test_producer_without_summary_fails_with_the_output() -> None:
    with pytest.raises(ValueError, match="no ProducerPerformance summary"):
        parse_producer("Exception in thread main: TimeoutException\n")


def test_consumer_row_is_read_by_header_name() -> None:
    perf = parse_consumer("WARN something\n" + CONSUMER_OUT)
    assert perf.records == 50_000
    assert perf.mb == pytest.approx(48.8281)
    assert perf.records_per_s == pytest.approx(59101.6548)
    assert perf.fetch_records_per_s == pytest.approx(101010.101)
    assert perf.fetch_mb_per_s == pytest.approx(98.6427)
    assert perf.rebalance_ms == 351


def test_consumer_without_header_fails() -> None:
    with pytest.raises(ValueError, match="no ConsumerPerformance header"):
        parse_consumer("WARNING: Exiting before consuming the expected number of messages\n")


def test_consumer_with_a_renamed_column_fails_clearly() -> None:
    with pytest.raises(ValueError, match="unexpected ConsumerPerformance row"):
        parse_consumer(CONSUMER_OUT.replace("fetch.nMsg.sec", "fetch.records.sec"))


def test_payload_file_holds_the_bench_mix_one_json_per_line(tmp_path: Path) -> None:
    path = tmp_path / "payloads.txt"
    mean = write_payloads(path, lines=500)
    lines = path.read_text().splitlines()
    assert len(lines) == 500
    assert all(json.loads(line)["blob"] for line in lines)
    assert mean == pytest.approx(sum(len(line) for line in lines) / 500)
    assert 100 < mean < 10_000  # mostly small, some 1 KB and 10 KB


def test_drain_rate_leaves_out_the_first_batch() -> None:
    drain = Drain(count=0, first_batch=0, first_s=0.0, last_s=0.0)
    for at, n in [(10.0, 100), (10.5, 500), (11.0, 500), (12.0, 1000)]:
        if drain.count == 0:
            drain.first_batch, drain.first_s = n, at
        drain.count += n
        drain.last_s = at
        drain.arrivals.append((at, n))
    assert drain.rate == pytest.approx(2000 / 2.0)
    assert drain.per_second() == [(0.0, 600.0), (1.0, 500.0), (2.0, 1000.0)]


def test_a_drain_too_short_to_time_is_a_lower_bound_from_launch() -> None:
    drain = Drain(count=2000, first_batch=1000, first_s=5.0, last_s=5.01, started_s=3.0)
    assert not drain.measured
    assert drain.rate == pytest.approx(2000 / 2.01)


def test_a_single_batch_drain_does_not_divide_by_zero() -> None:
    drain = Drain(count=2000, first_batch=2000, first_s=5.0, last_s=5.0, started_s=5.0)
    assert drain.rate == 2000.0
