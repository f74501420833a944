"""What MSM relies on from faust, checked on the real broker with the worker's own app factory.

A one-hop passthrough agent, written the way layer agents are (``noack_take`` batches, the
app's producer, every produce acknowledged before its batch is acked), runs in a child process:
``python -m tests.integration.test_worker_spike TOPOLOGY LAYER SOURCE DEST``. Findings and
numbers: docs/faust-notes.md.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from pipeline.agents.base import raw_topic
from pipeline.topology import load_topology
from pipeline.worker.app import create_app
from pipeline.worker.fatal import fatal
from pipeline.worker.runner import run_apps
from tests.fixtures.topologies import minimal, write_topology
from tests.worker_support import READY_LINE, REPO

Headers = list[tuple[str, str | bytes | None]]
Records = list[tuple[bytes, bytes, Headers]]
BATCH = 100


def passthrough_worker(topology_path: str, layer: str, source: str, dest: str) -> None:
    """The child: bytes in, the same bytes, key, partition and headers out."""
    app = create_app(load_topology(topology_path), layer)

    async def passthrough(stream: Any) -> None:
        producer = await app.maybe_start_producer()
        async for events in stream.noack_take(BATCH, within=0.05):
            sends = []
            for event in events:
                msg = event.message
                headers = list(msg.headers or ())  # wire order, repeats kept
                sends.append(
                    await producer.send(dest, msg.key, msg.value, msg.partition, None, headers)
                )
            await asyncio.gather(*sends)  # a failed produce raises here ...
            for event in events:
                await stream.ack(event)  # ... so its batch is never acked

    app.agent(raw_topic(app, source), name=layer)(fatal(app, layer)(passthrough))
    run_apps([app])


class _Child:
    """The passthrough worker in a child process; its consumer group is ``group``."""

    def __init__(self, tmp_path: Path, bootstrap: str, group: str, source: str, dest: str) -> None:
        doc = minimal()
        doc["namespace"], layer = group.rsplit(".", 1)
        doc["kafka"] = {"bootstrap_servers": bootstrap}
        topology = write_topology(tmp_path, doc)
        self.log_path = tmp_path / "worker.log"
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", __name__, str(topology), layer, source, dest]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        _until(lambda: READY_LINE in self.log() or self.proc.poll() is not None, timeout_s, "ready")
        assert self.proc.poll() is None, self.log()[-4000:]

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _produce(bootstrap: str, topic: str, records: Records) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value, headers in records:
        producer.produce(topic, value, key=key, headers=headers)
    assert producer.flush(30) == 0


def _read(bootstrap: str, topic: str, count: int, group: str) -> list[Message]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    try:
        deadline = time.monotonic() + 60
        while len(out) < count and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                assert m.error() is None, m.error()
                out.append(m)
    finally:
        consumer.close()
    return out


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        return [tp.offset for tp in consumer.committed(parts, timeout=10)]
    finally:
        consumer.close()


def test_passthrough_keeps_bytes_key_partition_and_every_header(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
) -> None:
    source, dest = topic_factory(partitions=3), topic_factory(partitions=3)
    group = f"{unique_name('spike')}.passthrough"
    sent: Records = []
    for i in range(300):
        value = bytes([i % 256, 0xFF, 0x00, 0xC3]) * 8  # not UTF-8: must not be decoded
        headers: Headers = [
            ("msm.id", str(i).encode()),
            ("dup", b"a"),
            ("dup", b"b"),
            ("null", None),
        ]
        sent.append((f"k{i % 7}".encode(), value, headers))
    _produce(kafka_bootstrap, source, sent)
    src = {
        dict(m.headers() or [])["msm.id"]: m
        for m in _read(kafka_bootstrap, source, 300, unique_name("chk"))
    }

    child = _Child(tmp_path, kafka_bootstrap, group, source, dest)
    try:
        child.wait_ready()
        out = _read(kafka_bootstrap, dest, 300, unique_name("chk"))
        assert child.stop() == 0, child.log()[-4000:]
    finally:
        child.close()

    assert len(out) == 300
    for m in out:
        original = src[dict(m.headers() or [])["msm.id"]]
        assert m.key() == original.key()
        assert m.partition() == original.partition()
        assert m.value() == original.value()
        assert m.headers() == original.headers()  # order, repeats and null values kept
    ends = [sum(1 for m in src.values() if m.partition() == p) for p in range(3)]
    assert _committed(kafka_bootstrap, group, source, 3) == ends


def test_a_produce_the_broker_refuses_exits_non_zero_and_its_offset_stays_uncommitted(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    unique_name: Callable[[str], str],
) -> None:
    source = topic_factory(partitions=1)
    dest = topic_factory(partitions=1, config={"max.message.bytes": "2000"})
    group = f"{unique_name('spike')}.refused"
    small: Records = [(b"k", b"x" * 10, [("msm.id", str(i).encode())]) for i in range(10)]
    _produce(kafka_bootstrap, source, small)

    child = _Child(tmp_path, kafka_bootstrap, group, source, dest)
    try:
        child.wait_ready()
        _until(
            lambda: _committed(kafka_bootstrap, group, source, 1) == [10], 30, "first 10 committed"
        )
        big: Headers = [("msm.id", b"big")]
        after: Records = [(b"k", b"x" * 10, [("msm.id", f"after-{i}".encode())]) for i in range(5)]
        _produce(kafka_bootstrap, source, [(b"k", b"y" * 5000, big), *after])
        code = child.wait_exit(60)
    finally:
        child.close()

    log = child.log()
    assert code != 0, log[-4000:]
    assert "MessageSizeTooLargeError" in log
    # The refused record (offset 10) and everything after it will be consumed again.
    assert _committed(kafka_bootstrap, group, source, 1) == [10]
    ids = {
        dict(m.headers() or [])["msm.id"]
        for m in _read(kafka_bootstrap, dest, 10, unique_name("chk"))
    }
    assert {str(i).encode() for i in range(10)} <= ids
    assert b"big" not in ids


if __name__ == "__main__":
    passthrough_worker(*sys.argv[1:5])
