"""The events every system gets: the same ids, sizes and intended send times.

A mix of sizes (mostly small, some 1 KB, a few 10 KB) drawn from a seeded RNG, so runs repeat.
Payload fields are the Avro schema ``schemas/bench_event.avsc``; peers get the same dict as JSON.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = Path(__file__).parent / "schemas" / "bench_event.avsc"
EVENT_TYPE = "bench.event"
SIZES = ((0.8, 100), (0.18, 1_000), (0.02, 10_000))  # (share, blob bytes)


@dataclass(frozen=True)
class Planned:
    seq: int
    sent_ns: int  # when it is due to be sent (open loop)
    payload: dict[str, object]


def plan(
    rate: float, count: int, start_ns: int, *, delay_ms: int = 0, seed: int = 7
) -> Iterator[Planned]:
    """``count`` events at ``rate``/s from ``start_ns``; payload sizes from :data:`SIZES`."""
    rng = random.Random(seed)
    interval_ns = 1e9 / rate
    for seq in range(count):
        sent_ns = start_ns + round(seq * interval_ns)
        draw, size = rng.random(), SIZES[-1][1]
        for share, blob in SIZES:
            if draw < share:
                size = blob
                break
            draw -= share
        payload: dict[str, object] = {
            "id": f"e{seed}-{seq}",
            "seq": seq,
            "sent_ns": sent_ns,
            "delay_ms": delay_ms,
            "blob": "x" * size,
        }
        yield Planned(seq, sent_ns, payload)
