"""The raw confluent-kafka hop: consume topic A, produce every record unchanged to topic B.

Run as ``python -m loadtest.hop_confluent --bootstrap B --src A --dst B --group G``; SIGTERM
stops it (flush, commit, leave the group). It is the least a Python layer can do per event:
``consume`` of what is already fetched (batches under load, never waiting to fill one), no
decoding, the producer MSM would use (acks=all, idempotent), offsets auto-committed (so, unlike
MSM, not only once the produce was acknowledged). That makes it the ceiling one MSM layer is
compared with, not a peer doing the same job.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from confluent_kafka import Consumer, Producer

from loadtest.hop_feed import producer_config

BATCH = 500


def hop(bootstrap: str, src: str, dst: str, group: str) -> int:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    producer = Producer(producer_config(bootstrap))
    consumer.subscribe([src])
    moved = 0
    try:
        while not stopping:
            # What is already fetched, without waiting for a full batch; else wait for one.
            msgs = consumer.consume(BATCH, 0) or [m for m in [consumer.poll(0.1)] if m]
            for msg in msgs:
                if msg.error():
                    print(f"consume error: {msg.error()}", file=sys.stderr, flush=True)
                    continue
                while True:
                    try:
                        producer.produce(dst, msg.value(), msg.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
                moved += 1
            producer.poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return moved


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.hop_confluent")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    print("hop ready", flush=True)
    moved = hop(args.bootstrap, args.src, args.dst, args.group)
    print(f"hop stopped after {moved} events", flush=True)


if __name__ == "__main__":
    main()
