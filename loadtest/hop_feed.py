"""The producer process of the one-hop measurements: the bench events, Avro single-object.

Run as ``python -m loadtest.hop_feed --bootstrap B --topic T --count N [--rate R] [--seed S]``.
``--rate 0`` produces as fast as it can (a backlog for a throughput run); a positive rate is open
loop: each event goes out at its planned time, late ones at once, and ``sent_ns`` in the payload
stays the planned time, so a slow system cannot hide its queueing. The bytes are what MSM's
ingress gets (``pipeline.avro.wire.encode``), so the hop moves the same records MSM moves.
Prints one JSON line at the end: ``{"produced": n, "seconds": s, "late_ms_max": ms}``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from confluent_kafka import Producer

from loadtest.payloads import SCHEMA, plan
from pipeline.avro.schemas import load_schema
from pipeline.avro.wire import encode

LEAD_NS = 200_000_000  # the first planned event, after imports and connecting are done
WARM_UP_SEED = 0  # its id (``e0-0``) is none of the measured ones: readers skip it
PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 1}


def producer_config(bootstrap: str) -> dict[str, object]:
    """What the hop and the feed produce with: durable like MSM (acks=all, idempotent)."""
    return {"bootstrap.servers": bootstrap, **PRODUCER}


def feed(bootstrap: str, topic: str, count: int, rate: float, seed: int) -> dict[str, float]:
    """Produce, flush; the seconds it took from the first planned send, and its worst lateness."""
    schema = load_schema(SCHEMA)
    producer = Producer(producer_config(bootstrap))
    producer.list_topics(topic, timeout=10)
    if rate > 0:  # connected, producer id and leaders known before the clock starts
        warm_up = next(plan(1.0, 1, 0, seed=WARM_UP_SEED)).payload
        producer.produce(topic, encode(schema, warm_up), str(warm_up["id"]).encode())
        producer.flush(30)
    start_ns = time.time_ns() + (LEAD_NS if rate > 0 else 0)
    late_ns = 0
    for planned in plan(rate if rate > 0 else 1e9, count, start_ns, seed=seed):
        if rate > 0:
            ahead_ns = planned.sent_ns - time.time_ns()
            if ahead_ns > 0:
                producer.poll(0)
                time.sleep(ahead_ns / 1e9)
            else:
                late_ns = max(late_ns, -ahead_ns)
        value = encode(schema, planned.payload)
        key = str(planned.payload["id"]).encode()
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} events still unacknowledged after 60 s")
    return {"seconds": (time.time_ns() - start_ns) / 1e9, "late_ms_max": late_ns / 1e6}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.hop_feed")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    done = feed(args.bootstrap, args.topic, args.count, args.rate, args.seed)
    print(json.dumps({"produced": args.count, **done}), flush=True)


if __name__ == "__main__":
    main()
