"""Scenario 2: SIGKILL the broker mid-stream and restart it.

The scenario runs its own single-node broker (a private port and state dir), because killing
the shared one would take every other user of it down too. Kafka's log recovery after a
SIGKILL is part of what is tested: the broker restarts on the same data.

Promises: 0 lost (everything Kafka acknowledged runs, at least once), order kept; producers
and workers recover by themselves (no worker exits, none is restarted by the harness); and the
HTTP ingress never answers 202 for an event Kafka did not acknowledge: while the broker is down
it answers 503 with Retry-After, and a client that resends gets its event through once Kafka
is back.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from contextlib import ExitStack
from pathlib import Path

from chaos.checker import Kill, check
from chaos.drive import drain, load_for
from chaos.generator import Generator
from chaos.harness import Harness, chaos_pipeline
from chaos.ingress_client import IngressClient
from chaos.model import ChaosContext, ScenarioResult
from loadtest.procs import WorkerProcess
from pipeline.broker import process
from pipeline.broker.pidfile import live_pid
from pipeline.broker.settings import BrokerSettings

WORK_MS = 2.0


def broker_kill(ctx: ChaosContext) -> ScenarioResult:
    """SIGKILL the broker for a short and a long outage (longer than the ingress's Kafka
    timeout, so it must answer 503), restart it on the same data each time."""
    rate = ctx.seconds(150, 80)
    segment = ctx.seconds(45, 8)
    outages = (ctx.seconds(5, 3), ctx.seconds(25, 15))
    keys, partitions = int(ctx.seconds(32, 8)), 6
    settings = {
        "rate": f"{rate:.0f} events/s open loop (Python client), plus an HTTP client",
        "keys": f"{keys} (per-key seq), {partitions} partitions; HTTP client: 4 keys of its own",
        "delayed": "every 10th event, 500-3000 ms",
        "faults": f"SIGKILL the broker after {segment:.0f} s of load, down "
        + " s, then ".join(f"{s:.0f}" for s in outages)
        + f" s (restart on the same log dirs); {segment:.0f} s of load between and after",
        "subscribers": "plain (unordered), ordered (ordered: true); both dedup_window 1h",
        "HTTP client": "one event at a time; on 503 resend the same id after Retry-After "
        "(capped at 2 s)",
    }
    with ExitStack() as stack:
        broker = _private_broker(ctx.work_dir / "broker")
        stack.callback(_stop_broker, broker)
        ctx.say(f"private broker on {broker.bootstrap}")
        h = stack.enter_context(
            chaos_pipeline(
                ctx.work_dir, broker.bootstrap, ctx.say, partitions=partitions, work_ms=WORK_MS
            )
        )
        ingress = _ingress_worker(h, ctx.work_dir)
        stack.callback(ingress.stop)
        client = IngressClient("127.0.0.1", ingress_port(ingress), rate=20)
        gen = Generator(h.publisher, rate, keys, delayed_every=10, delays_ms=(500, 3000))
        started = time.time_ns()
        windows: list[tuple[int, int]] = []
        client.start()
        with gen.running():
            for down_s in outages:
                load_for(h, gen, segment)
                windows.append(_kill_broker(h, broker, down_s))
            load_for(h, gen, segment)
        client.stop()
        sent = gen.result()
        published = [*sent.published, *client.accepted]
        ctx.say(f"published {len(published)} ({sent.refused} refused); draining")
        drain_s = drain(h, published, ctx.seconds(60, 30), ctx.seconds(600, 300))
        time.sleep(ctx.seconds(10, 3))
        h.ledger.poll()
        h.workers.supervise()
        checks = check(published, h.ledger.executions, h.checked, h.kills)
        failures, notes = _ingress_findings(client, windows, ingress)
        notes += _recovery_notes(h, windows)
        settings["published"] = (
            f"{len(sent.published)} acknowledged from the Python client in {sent.seconds:.0f} s "
            f"({sent.refused} refused), {len(client.accepted)} accepted over HTTP"
        )
        exits = list(h.workers.exits)
        kills = list(h.kills)
    return ScenarioResult(
        "broker-kill", started, checks, kills, settings, exits, drain_s, notes, failures
    )


def _private_broker(state_dir: Path) -> BrokerSettings:
    shutil.rmtree(state_dir, ignore_errors=True)
    port = _free_port_pair()
    settings = BrokerSettings(port=port, controller_port=port + 1, state_dir=state_dir)
    process.start(settings)
    return settings


def _stop_broker(settings: BrokerSettings) -> None:
    process.stop(settings)
    shutil.rmtree(settings.root, ignore_errors=True)


def _free_port_pair() -> int:
    """A port whose next one is free too (client and KRaft controller)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65535 and _free(port) and _free(port + 1):
            return port
    raise RuntimeError("no two free adjacent ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ingress_worker(h: Harness, work_dir: Path) -> WorkerProcess:
    """A second frontend worker that also serves the HTTP ingress (the layer workers do not)."""
    port = _free_port_pair()
    proc = WorkerProcess(
        h.workers.topology_path,
        work_dir / "ingress.log",
        layers="frontend",
        env=h.workers.env,
        http_port=port,
    )
    proc.wait_ready()
    return proc


def ingress_port(proc: WorkerProcess) -> int:
    command = proc.proc.args
    assert isinstance(command, list)
    return int(command[command.index("--http-port") + 1])


def _kill_broker(h: Harness, broker: BrokerSettings, down_s: float) -> tuple[int, int]:
    """SIGKILL, ``down_s`` down, start on the same data; (killed, answering again) in ns."""
    pid = live_pid(broker.pid_file)
    if pid is None:
        raise RuntimeError("the private broker is not running")
    os.kill(pid, signal.SIGKILL)
    killed = time.time_ns()
    h.say(f"[yellow]killed the broker (pid {pid}); down {down_s:.0f} s[/yellow]")
    end = time.monotonic() + down_s
    while time.monotonic() < end:
        time.sleep(0.5)
        for gone in h.workers.supervise():
            h.say(f"[red]{gone.target} worker (pid {gone.pid}) exited {gone.code}[/red]")
        h.ledger.poll()
    result = process.start(broker)
    back = time.time_ns()
    h.kills.append(Kill("broker", pid, killed, back, result.pid or 0))
    h.say(f"broker back (pid {result.pid}) {(back - killed) / 1e9:.1f} s after the kill")
    return killed, back


def _ingress_findings(
    client: IngressClient, windows: list[tuple[int, int]], ingress: WorkerProcess
) -> tuple[list[str], list[str]]:
    """Broken promises and notes about the HTTP ingress: its answers while the broker was down
    and after; anything but 202 and 503 is a failure (a 500, or no answer: the ingress died)."""
    failures: list[str] = []
    notes: list[str] = []
    for i, (killed, back) in enumerate(windows, 1):
        during = sorted(client.statuses(killed, back).items())
        answered = ", ".join(f"{n}x {s or 'no answer'}" for s, n in during) or "nothing"
        seconds = (back - killed) / 1e9
        notes.append(f"outage {i} ({seconds:.0f} s): HTTP ingress answered {answered}")
    everything = client.statuses()
    odd = {s: n for s, n in everything.items() if s not in (202, 503)}
    if odd:
        failures.append(f"HTTP ingress answered {odd} (only 202 and 503 are honest answers)")
    long_outage = max(windows, key=lambda w: w[1] - w[0])
    if client.statuses(*long_outage).get(503, 0) == 0:
        failures.append("HTTP ingress never answered 503 during the long broker outage")
    if ingress.proc.poll() is not None:
        failures.append(f"the HTTP ingress worker exited {ingress.proc.returncode}")
    notes.append(f"HTTP client: {len(client.accepted)} accepted, answers {dict(everything)}")
    return failures, notes


def _recovery_notes(h: Harness, windows: list[tuple[int, int]]) -> list[str]:
    """How long after the broker answered again the handlers ran new work."""
    notes = []
    starts = sorted(e.started_ns for e in h.ledger.executions)
    for i, (_killed, back) in enumerate(windows, 1):
        after = next((s for s in starts if s >= back), None)
        if after is not None:
            seconds = (after - back) / 1e9
            notes.append(f"outage {i}: first handler run {seconds:.1f} s after the restart")
    return notes
