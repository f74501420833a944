"""A chaos pipeline: the topology, one worker process per layer, the publisher, the ledger.

One process per layer so a fault hits exactly one layer: ``kill("delivery")`` SIGKILLs the
delivery worker and nothing else. Workers come from :class:`loadtest.procs.WorkerProcess`
(short Kafka sessions, so a killed worker's partitions move on in seconds). A worker that
exits without being killed is recorded and replaced, as a supervisor would: the report says
so and the scenario fails, because MSM workers should not die on their own.
Everything started is stopped and the namespace's topics and groups deleted on exit.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import AdminClient

from chaos.checker import Kill
from chaos.generator import EVENT_TYPE
from chaos.handlers import WORK_ENV
from chaos.ledger import ENV as LEDGER_ENV
from chaos.ledger import LedgerTail
from chaos.model import Exited
from loadtest.msm_run import close_quietly, delete_topics
from loadtest.procs import WorkerProcess
from pipeline.client import Publisher
from pipeline.topology import Topology, load_topology
from pipeline.topology.apply import apply_topology
from pipeline.topology.topics import LAYERS

SCHEMA = Path(__file__).resolve().parent / "schemas" / "chaos_event.avsc"
HANDLER = "chaos.handlers:record"
SUBSCRIBERS: dict[str, bool] = {"plain": False, "ordered": True}  # name -> ordered


def chaos_document(
    namespace: str,
    bootstrap: str,
    *,
    partitions: int,
    concurrency: int = 8,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``chaos.event`` keyed by ``key``; an unordered and an ordered subscriber, both deduped,
    plus a scenario's ``extra`` subscribers (name -> spec)."""
    subs: dict[str, Any] = {
        name: {
            "events": [EVENT_TYPE],
            "handler": HANDLER,
            "ordered": ordered,
            "concurrency": {"min": 2, "max": concurrency},
            "max_in_flight": 1000,
            "dedup_window": "1h",
        }
        for name, ordered in SUBSCRIBERS.items()
    }
    subs.update({name: dict(spec) for name, spec in (extra or {}).items()})
    return {
        "namespace": namespace,
        "kafka": {"bootstrap_servers": bootstrap},
        "delay_tiers": ["1s", "10s", "1m"],
        "events": {EVENT_TYPE: {"schema": str(SCHEMA), "partitions": partitions, "key": "key"}},
        "subscribers": subs,
    }


@dataclass
class LayerWorkers:
    """One ``msm worker --layers <layer>`` per layer; kill and restart each alone."""

    topology_path: Path
    log_dir: Path
    env: Mapping[str, str]
    procs: dict[str, WorkerProcess] = field(default_factory=dict)
    exits: list[Exited] = field(default_factory=list)
    extras: dict[str, WorkerProcess] = field(default_factory=dict)  # name -> worker on top
    _started: int = 0

    def start(self, layer: str) -> WorkerProcess:
        self._started += 1
        log = self.log_dir / f"{self._started:02d}-{layer}.log"
        proc = WorkerProcess(self.topology_path, log, layers=layer, env=self.env)
        self.procs[layer] = proc
        return proc

    def start_all(self, timeout_s: float = 120.0) -> None:
        for layer in LAYERS:
            self.start(layer)
        for layer in LAYERS:
            self.procs[layer].wait_ready(timeout_s)

    def kill(self, layer: str) -> tuple[int, int]:
        """SIGKILL the layer's worker; (its pid, when)."""
        proc = self.procs[layer]
        proc.proc.kill()
        at = time.time_ns()
        proc.proc.wait(30)
        proc.stop()  # only closes its log now
        return proc.pid, at

    def start_extra(self, name: str, layers: str | None = None) -> WorkerProcess:
        """One more worker on top of the per-layer ones (``layers`` None: all), not waited for.
        Not replaced if it exits on its own: :meth:`supervise` only records that."""
        self._started += 1
        log = self.log_dir / f"{self._started:02d}-{name}.log"
        proc = WorkerProcess(self.topology_path, log, layers=layers, env=self.env)
        self.extras[name] = proc
        return proc

    def stop_extra(self, name: str, *, kill: bool = False) -> tuple[int, int, int]:
        """SIGTERM extra ``name`` and wait (SIGKILL if it hangs), or SIGKILL it; (pid, when,
        exit code)."""
        proc = self.extras.pop(name)
        at = time.time_ns()
        if kill:
            proc.proc.kill()
            proc.proc.wait(30)
        return proc.pid, at, proc.stop(15.0)

    def restart(self, layer: str, timeout_s: float = 120.0) -> WorkerProcess:
        proc = self.start(layer)
        proc.wait_ready(timeout_s)
        return proc

    def supervise(self) -> list[Exited]:
        """Record and replace workers that exited on their own; the new exits."""
        found = []
        for layer, proc in list(self.procs.items()):
            code = proc.proc.poll()
            if code is None:
                continue
            found.append(Exited(layer, proc.pid, code, time.time_ns(), proc.tail(3000)))
            proc.stop()
            self.start(layer)
        for name, proc in list(self.extras.items()):
            code = proc.proc.poll()
            if code is not None:
                found.append(Exited(name, proc.pid, code, time.time_ns(), proc.tail(3000)))
                proc.stop()
                del self.extras[name]
        self.exits.extend(found)
        return found

    def stop_all(self) -> None:
        """SIGTERM all at once (each takes a second or two), then reap; SIGKILL stragglers."""
        procs = [*self.procs.values(), *self.extras.values()]
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.terminate()
        for proc in procs:
            try:
                proc.proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.proc.kill()
            proc.stop()  # only reaps and closes the log now: a second SIGTERM could cut it


@dataclass
class Harness:
    topology: Topology
    workers: LayerWorkers
    publisher: Publisher
    ledger: LedgerTail
    say: Callable[[str], None]
    kills: list[Kill] = field(default_factory=list)
    # subscribers that record every event they run (name -> ordered): what drain waits for
    checked: dict[str, bool] = field(default_factory=lambda: dict(SUBSCRIBERS))

    def kill_and_restart(self, layer: str, down_s: float) -> Kill:
        """SIGKILL ``layer``'s worker, leave it down ``down_s``, start a new one, wait ready."""
        pid, at = self.workers.kill(layer)
        self.say(f"killed {layer} (pid {pid}); down {down_s:.0f} s")
        time.sleep(down_s)
        proc = self.workers.restart(layer)
        kill = Kill(layer, pid, at, time.time_ns(), proc.pid)
        self.say(f"{layer} back (pid {proc.pid}) {(kill.restarted_ns - at) / 1e9:.1f} s after")
        self.kills.append(kill)
        return kill


@contextmanager
def chaos_pipeline(
    work_dir: Path,
    bootstrap: str,
    say: Callable[[str], None],
    *,
    partitions: int = 6,
    work_ms: float = 2.0,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Harness]:
    """A running pipeline, one worker per layer, under a fresh namespace; torn down on exit.
    ``extra`` subscribers join the document; ``env`` joins the workers' environment."""
    ledger_dir = work_dir / "ledger"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    namespace = f"chaos{uuid.uuid4().hex[:10]}"
    path = work_dir / "topology.yaml"
    doc = chaos_document(namespace, bootstrap, partitions=partitions, extra=extra)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    topology = load_topology(path)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    worker_env = {**(env or {}), LEDGER_ENV: str(ledger_dir), WORK_ENV: str(work_ms)}
    with ExitStack() as stack:
        apply_topology(topology, admin)
        stack.callback(delete_topics, admin, topology)
        workers = LayerWorkers(path, work_dir, worker_env)
        stack.callback(workers.stop_all)
        say(f"namespace {namespace}: starting one worker per layer")
        workers.start_all()
        publisher = Publisher(topology)
        stack.callback(close_quietly, publisher)
        yield Harness(topology, workers, publisher, LedgerTail(ledger_dir), say)
