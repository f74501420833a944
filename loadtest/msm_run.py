"""An MSM pipeline for one bench: topology, workers, an open-loop publisher, lag and ledger.

``msm_pipeline(ctx, ...)`` applies a topology with the bench event type and N subscribers
(handler ``loadtest.handlers:noop``) under a unique namespace, starts K ``msm worker``
processes, and on exit stops them and deletes the topics, whatever happened in between.
``Pipeline.window(rate, seconds)`` publishes at planned times (open loop: a late send is still
measured from its planned time), then waits until the handlers ran every event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import yaml
from confluent_kafka.admin import AdminClient

from loadtest.ledger import ENV as LEDGER_ENV
from loadtest.ledger import Run
from loadtest.ledger_tail import LedgerTail
from loadtest.model import BenchContext
from loadtest.msm_lag import LagSampler
from loadtest.payloads import EVENT_TYPE, SCHEMA, plan
from loadtest.procs import WorkerProcess
from pipeline.client import Publisher
from pipeline.topology import Topology, load_topology
from pipeline.topology.apply import apply_topology
from pipeline.topology.topics import LAYERS, plan_topics

HANDLER = "loadtest.handlers:noop"


def bench_document(
    namespace: str, bootstrap: str, *, subscribers: int, partitions: int, concurrency: int
) -> dict[str, Any]:
    """One bench event type, ``subscribers`` no-op handler subscribers with room to run."""
    subs = {
        f"bench-{i}": {
            "events": [EVENT_TYPE],
            "handler": HANDLER,
            "concurrency": {"min": concurrency, "max": concurrency},
            "max_in_flight": 1000,
        }
        for i in range(subscribers)
    }
    return {
        "namespace": namespace,
        "kafka": {"bootstrap_servers": bootstrap},
        "delay_tiers": ["1s", "10s", "1m", "10m"],
        "events": {EVENT_TYPE: {"schema": str(SCHEMA), "partitions": partitions, "key": "id"}},
        "subscribers": subs,
    }


@dataclass(frozen=True)
class Window:
    prefix: str  # event ids are "<prefix>-<seq>"
    rate: float
    count: int
    start_ns: int  # planned time of the first event (wall clock)
    end_ns: int  # planned time after the last
    start_mono: float  # the same instant on the monotonic clock (lag samples)
    behind_ms: float  # how late the publisher's worst send was (a harness limit if large)
    runs: list[Run]


class Pipeline:
    def __init__(self, topology: Topology, ledger: LedgerTail, lag: LagSampler) -> None:
        self.topology = topology
        self.ledger = ledger
        self.lag = lag
        self.publisher = Publisher(topology)
        self._seed = 0
        self._pings = 0

    def window(
        self, rate: float, seconds: float, *, delay_ms: int = 0, drain_s: float = 30.0
    ) -> Window:
        """``rate`` events/s for ``seconds``, then wait (up to ``drain_s``) for every run."""
        self._seed += 1
        prefix, count = f"e{self._seed}", max(1, round(rate * seconds))
        start_ns = time.time_ns() + 100_000_000
        start_mono = time.monotonic() + (start_ns - time.time_ns()) / 1e9
        behind = 0
        for event in plan(rate, count, start_ns, delay_ms=delay_ms, seed=self._seed):
            wait = (event.sent_ns - time.time_ns()) / 1e9
            if wait > 0.001:
                time.sleep(wait)
            else:
                behind = max(behind, -int(wait * 1e9))
            self.publisher.publish(EVENT_TYPE, event.payload, wait=False)
        self.publisher.flush()
        self.drain(prefix, count, drain_s)
        end_ns = start_ns + round(count * 1e9 / rate)
        runs = self.ledger.runs(prefix)
        return Window(prefix, rate, count, start_ns, end_ns, start_mono, behind / 1e6, runs)

    def drain(self, prefix: str, count: int, timeout_s: float) -> bool:
        """Waits until ``count`` events of ``prefix`` ran; pings keep the ledgers flushing.

        A worker's ledger flushes when a run is recorded 100 ms after its last write, so the
        last runs of a window would sit in its buffer while nothing else arrives.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.ledger.poll()
            if self.ledger.count(prefix) >= count:
                return True
            self._ping()
            time.sleep(0.2)
        return False

    def _ping(self) -> None:
        self._pings += 1
        ping = {"id": f"ping-{self._pings}", "seq": 0, "sent_ns": time.time_ns(), "blob": ""}
        self.publisher.publish(EVENT_TYPE, ping, wait=False)


@contextmanager
def msm_pipeline(
    ctx: BenchContext,
    *,
    subscribers: int = 1,
    workers: int = 1,
    partitions: int = 6,
    concurrency: int = 8,
    name: str = "msm",
) -> Iterator[Pipeline]:
    """A running pipeline; everything it started is stopped and deleted on exit."""
    directory = ctx.work_dir / f"{name}-{uuid.uuid4().hex[:6]}"
    ledger_dir = directory / "ledger"
    ledger_dir.mkdir(parents=True)
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    doc = bench_document(
        namespace,
        ctx.bootstrap,
        subscribers=subscribers,
        partitions=partitions,
        concurrency=concurrency,
    )
    path = directory / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    topology = load_topology(path)
    admin = AdminClient({"bootstrap.servers": ctx.bootstrap, "log_level": 0})
    with ExitStack() as stack:
        apply_topology(topology, admin)
        stack.callback(delete_topics, admin, topology)
        procs = []
        for i in range(workers):
            env = {LEDGER_ENV: str(ledger_dir)}
            proc = WorkerProcess(path, directory / f"worker-{i}.log", env=env)
            stack.callback(proc.stop)
            procs.append(proc)
        for proc in procs:
            proc.wait_ready()
        lag = LagSampler(ctx.bootstrap, namespace).start()
        stack.callback(lag.stop)
        pipeline = Pipeline(topology, LedgerTail(ledger_dir), lag)
        stack.callback(close_quietly, pipeline.publisher)
        yield pipeline


def close_quietly(publisher: Publisher) -> None:
    """Flush and close, ignoring errors: used on the way out of a run (bench or chaos)."""
    with suppress(Exception):
        publisher.close(timeout_s=10)


def delete_topics(admin: AdminClient, topology: Topology) -> None:
    """The namespace's topics and its layers' consumer groups (the workers have left them)."""
    names = [p.name for p in plan_topics(topology)]
    groups = [f"{topology.namespace}.{layer}" for layer in LAYERS]
    futures = [
        *admin.delete_topics(names, operation_timeout=30).values(),
        *admin.delete_consumer_groups(groups, request_timeout=30).values(),
    ]
    for future in futures:
        with suppress(Exception):
            future.result(timeout=30)
