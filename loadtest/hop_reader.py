"""The harness side of a one-hop measurement: reads topic B, times arrivals, takes latencies.

It reads by assignment from the start of B (no group, no rebalance), so it is reading before
the hop under test sends anything. Throughput comes from arrival times at this reader: after
the hop's start-up (the first batch), ``events / (last arrival - first arrival)``. Latency is
the receive time minus the planned send time carried in the payload (open loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from loadtest.model import Series
from loadtest.payloads import SCHEMA
from loadtest.stats import buckets
from pipeline.avro.schemas import load_schema
from pipeline.avro.wire import HEADER_SIZE, decode_body

STALL_S = 60.0  # no new record on B for this long: the hop is stuck, stop waiting
PROGRESS_EVERY_S = 0.25
MIN_SPAN_S = 0.5  # a drain shorter than this cannot be timed by batch arrivals


@dataclass
class Drain:
    count: int
    first_batch: int  # records in the first batch: they arrived before the clock started
    first_s: float  # monotonic time of the first and the last arrival
    last_s: float
    started_s: float = 0.0  # when reading began, right after the hop was launched
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, batch size)

    @property
    def measured(self) -> bool:
        """Long enough to time the flow itself (else :attr:`rate` is a lower bound)."""
        return self.last_s - self.first_s >= MIN_SPAN_S and self.count > self.first_batch

    @property
    def rate(self) -> float:
        """Events/s after the first batch; for a drain too short to time (a smoke run), the
        lower bound ``count / time since the hop was launched`` (its start-up included)."""
        if self.measured:
            return (self.count - self.first_batch) / (self.last_s - self.first_s)
        whole = self.last_s - self.started_s
        return self.count / whole if whole > 0 else float(self.count)

    def per_second(self) -> Series:
        return buckets(((at - self.first_s, float(n)) for at, n in self.arrivals), sum)


class SinkReader:
    """Every record of ``topic`` from its beginning."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-reader",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._schema = load_schema(SCHEMA)

    def drain(
        self,
        count: int,
        check: Callable[[], None],
        progress: Callable[[float], None],
        max_s: float | None = None,
    ) -> Drain:
        """Wait for ``count`` records, or ``max_s`` after the first; ``check`` raises if the hop
        process died."""
        drain = Drain(0, 0, 0.0, 0.0, started_s=time.monotonic())
        for batch, now in self._batches(count, check, progress, lambda: drain.count):
            if drain.count == 0:
                drain.first_batch, drain.first_s = len(batch), now
            drain.count += len(batch)
            drain.last_s = now
            drain.arrivals.append((now, len(batch)))
            if max_s is not None and now - drain.first_s >= max_s:
                break
        return drain

    def latencies(
        self,
        count: int,
        id_prefix: str,
        check: Callable[[], None],
        progress: Callable[[float], None],
    ) -> list[tuple[float, float]]:
        """(receive time in s since the first planned send, latency ms) of ``count`` events.

        Only events whose id starts with ``id_prefix`` (the seed of this phase) count, once each.
        """
        seen: set[int] = set()
        out: list[tuple[int, int]] = []  # (planned send ns, receive ns)
        for batch, _ in self._batches(count, check, progress, lambda: len(out)):
            received_ns = time.time_ns()
            for value in batch:
                event = decode_body(value, self._schema, offset=HEADER_SIZE)
                assert isinstance(event, dict)
                seq, sent_ns = int(event["seq"]), int(event["sent_ns"])
                if str(event["id"]).startswith(id_prefix) and seq not in seen:
                    seen.add(seq)
                    out.append((sent_ns, received_ns))
        start_ns = min((s for s, _ in out), default=0)
        return sorted(((s - start_ns) / 1e9, (r - s) / 1e6) for s, r in out)

    def close(self) -> None:
        self._consumer.close()

    def _batches(
        self,
        count: int,
        check: Callable[[], None],
        progress: Callable[[float], None],
        done: Callable[[], int],
    ) -> Iterator[tuple[list[bytes], float]]:
        """Batches of values with their arrival time, until ``done() >= count``."""
        last_new = last_progress = time.monotonic()
        while done() < count:
            msgs = self._consumer.consume(1000, 0) or [m for m in [self._consumer.poll(0.1)] if m]
            now = time.monotonic()
            values = [v for m in msgs if not m.error() and (v := m.value()) is not None]
            if values:
                last_new = now
                yield values, now
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                progress(min(1.0, done() / count))
                check()
            if now - last_new > STALL_S:
                raise RuntimeError(f"nothing new on the sink for {STALL_S} s: {done()}/{count}")
        progress(1.0)
