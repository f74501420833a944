"""Run ``msm worker`` as a subprocess against a throwaway namespace on the real broker.

Generic on purpose (any layers, any topology document): :func:`applied_topology` writes a
topology with a unique namespace next to the fixture schemas and creates its topics the way
``msm topology apply`` does; :class:`Worker` starts, stops or SIGKILLs a worker on it and keeps
its log; :class:`TopicReader` collects a topic's records without joining any group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.topology import Topology, load_topology
from pipeline.topology.apply import apply_topology
from pipeline.topology.topics import plan_topics
from tests.fixtures.topologies import write_topology

REPO = Path(__file__).resolve().parent.parent
MSM = Path(sys.executable).parent / "msm"
READY_LINE = "[^Worker]: Ready"
# A SIGKILLed worker keeps its partitions until its session expires: keep that short in tests.
FAST_SESSIONS = {
    "MSM_FAUST_BROKER_SESSION_TIMEOUT": "6",
    "MSM_FAUST_BROKER_HEARTBEAT_INTERVAL": "1",
}
Headers = list[tuple[str, bytes]]


@contextmanager
def applied_topology(
    directory: Path, document: dict[str, Any], bootstrap: str, admin: AdminClient
) -> Iterator[Topology]:
    """``document`` under a fresh namespace, every planned topic created; deleted afterwards."""
    doc = {**document, "namespace": f"t{uuid.uuid4().hex[:12]}"}
    doc["kafka"] = {**doc.get("kafka", {}), "bootstrap_servers": bootstrap}
    topology = load_topology(write_topology(directory, doc))
    apply_topology(topology, admin)
    try:
        yield topology
    finally:
        names = [p.name for p in plan_topics(topology)]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with suppress(Exception):
                future.result(timeout=30)


class Worker:
    """``msm worker --layers ...`` on a topology; output (stdout and stderr) in ``log_path``."""

    def __init__(
        self,
        topology: Topology,
        layers: Sequence[str],
        log_path: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._offset = log_path.stat().st_size if log_path.exists() else 0
        self._log = log_path.open("ab")
        self.started = time.monotonic()
        command = [str(MSM), "--topology", str(topology.source_path), "worker"]
        command += ["--layers", ",".join(layers), "--no-http", *args]
        self.proc = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAST_SESSIONS, **(env or {})},
            cwd=REPO,
        )

    def log(self) -> str:
        """This worker's output (a log file shared by several runs holds each after the last)."""
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Seconds from launch until Faust reports Ready; fails with the log if it exits first."""
        self.wait_for_log(READY_LINE, timeout_s)
        return time.monotonic() - self.started

    def wait_for_log(self, text: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker did not log {text!r} in {timeout_s} s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def tail(self, chars: int = 6000) -> str:
        return self.log()[-chars:]

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM (a clean stop that leaves the groups); SIGKILL if that hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self._close()

    def kill(self) -> int:
        """SIGKILL: no commit, no leaving the group, nothing flushed."""
        self.proc.kill()
        return self._close()

    def _close(self) -> int:
        code = self.proc.wait(30)
        self._log.close()
        return code

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.kill()


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers

    @property
    def header(self) -> dict[str, bytes]:
        return dict(self.headers)


def _record(m: Message) -> Record:
    _, timestamp = m.timestamp()
    return Record(
        m.topic() or "",
        m.partition() or 0,
        m.offset() or 0,
        timestamp,
        m.key(),
        m.value() or b"",
        _headers(m),
    )


def _headers(m: Message) -> Headers:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw  # consumed headers come as a list
    return [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in pairs]


class TopicReader:
    """Every record of a topic from its start, read by assignment (no group to join)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.records: list[Record] = []
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    def poll(self, seconds: float) -> list[Record]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(0.1)
        return self.records

    def wait_for(
        self, done: Callable[[list[Record]], bool], what: str, timeout_s: float = 30.0
    ) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self._read(0.1)
        return self.records

    def _read(self, timeout_s: float) -> None:
        for m in self._consumer.consume(num_messages=1000, timeout=timeout_s):
            error = m.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise AssertionError(f"consumer error: {error}")
            if error is None:
                self.records.append(_record(m))

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
