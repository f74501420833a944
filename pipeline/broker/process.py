"""Starting, stopping and inspecting the local broker process."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.broker import logs
from pipeline.broker.config import format_storage, write_config
from pipeline.broker.errors import BrokerError, BrokerStartTimeoutError
from pipeline.broker.jars import cached_libs, distribution_libs, ensure_jars
from pipeline.broker.pidfile import live_pid, process_state, remove_pid, write_pid
from pipeline.broker.probe import accepts_connections, is_answering
from pipeline.broker.settings import BrokerSettings
from pipeline.broker.tools import require_java

Progress = Callable[[str], None]
_POLL_S = 0.25
_KILL_WAIT_S = 10.0


@dataclass(frozen=True)
class StartResult:
    """``external``: another broker (not started from this state dir) already answers."""

    outcome: Literal["started", "already_running", "external"]
    bootstrap: str
    pid: int | None
    log_file: Path
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class StopResult:
    """``killed``: it did not shut down within the grace period and got SIGKILL."""

    outcome: Literal["stopped", "killed", "not_running"]
    pid: int | None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class StatusResult:
    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    state_dir: Path
    log_file: Path


def _noop(_: str) -> None:
    return None


@contextmanager
def _locked(settings: BrokerSettings) -> Iterator[None]:
    """One start or stop at a time per state dir (a CLI racing the test fixture)."""
    settings.root.mkdir(parents=True, exist_ok=True)
    with (settings.root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def start(settings: BrokerSettings | None = None, progress: Progress = _noop) -> StartResult:
    """Starts the broker in the background and returns once it answers a metadata request."""
    settings = settings or BrokerSettings()
    t0 = time.monotonic()
    with _locked(settings):
        pid = live_pid(settings.pid_file)
        if pid is not None:
            _wait_answering(settings, pid, kill_on_failure=False)
            return _started("already_running", settings, pid, t0)
        if is_answering(settings.bootstrap, 2.0):
            return _started("external", settings, None, t0)
        _check_ports_free(settings)
        java = require_java()
        if distribution_libs(settings.kafka_home) is None and cached_libs(settings) is None:
            progress(f"fetching the Kafka jars with Maven into {settings.lib_dir} (first time)")
        lib_dir = ensure_jars(settings)
        write_config(settings)
        if format_storage(settings, java, lib_dir):
            progress(f"formatted a new KRaft log dir in {settings.data_dir}")
        marks = {path: logs.size(path) for path in (settings.log_file, settings.stdout_file)}
        pid = _launch(settings, java, lib_dir)
        write_pid(settings.pid_file, pid)
        progress(f"started the broker (pid {pid}), waiting for it on {settings.bootstrap}")
        _wait_answering(settings, pid, kill_on_failure=True, marks=marks)
        return _started("started", settings, pid, t0)


def _started(
    outcome: Literal["started", "already_running", "external"],
    settings: BrokerSettings,
    pid: int | None,
    t0: float,
) -> StartResult:
    return StartResult(outcome, settings.bootstrap, pid, settings.log_file, time.monotonic() - t0)


def _check_ports_free(settings: BrokerSettings) -> None:
    busy = [
        str(port)
        for port in (settings.port, settings.controller_port)
        if accepts_connections(settings.host, port, 0.5)
    ]
    if busy:
        raise BrokerError(
            f"port {', '.join(busy)} on {settings.host} is taken by another process that is not "
            "a Kafka broker answering there; stop it or use --port/--controller-port"
        )


def _launch(settings: BrokerSettings, java: str, lib_dir: Path) -> int:
    """Runs the JVM detached: its own session, reparented once the launching shell exits.

    The shell prints the JVM's pid; our process never owns it, so it survives the CLI and
    leaves no child for Python to warn about.
    """
    cmd = [
        java,
        f"-Xmx{settings.heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={settings.log4j_config}",
        "-cp",
        str(lib_dir / "*"),
        "kafka.Kafka",
        str(settings.server_properties),
    ]
    script = '"$@" </dev/null >>"$0" 2>&1 & echo $!'
    out = subprocess.run(
        ["/bin/sh", "-c", script, str(settings.stdout_file), *cmd],
        capture_output=True,
        text=True,
        cwd=settings.root,
        start_new_session=True,
        timeout=30,
        check=False,
    )
    pid_text = out.stdout.strip()
    if out.returncode != 0 or not pid_text.isdigit():
        raise BrokerError(f"could not launch the broker: {out.stderr.strip() or pid_text}")
    return int(pid_text)


def _wait_answering(
    settings: BrokerSettings,
    pid: int,
    *,
    kill_on_failure: bool,
    marks: dict[Path, int] | None = None,
) -> None:
    deadline = time.monotonic() + settings.timeout_s
    while True:
        if process_state(pid) == "gone":
            remove_pid(settings.pid_file)
            excerpt = log_excerpt(settings, marks=marks)
            raise BrokerError(f"the broker process (pid {pid}) exited during start-up.\n{excerpt}")
        if is_answering(settings.bootstrap, 1.0):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_S)
    what = f"the broker (pid {pid}) did not answer on {settings.bootstrap} within "
    what += f"{settings.timeout_s:g} s"
    if kill_on_failure:
        _terminate(settings, pid)
        what += "; it was stopped (try a longer --timeout-s on a slow machine)"
    else:
        what += "; see `msm broker logs` or `msm broker stop` it"
    raise BrokerStartTimeoutError(f"{what}.\n{log_excerpt(settings, marks=marks)}")


def log_excerpt(
    settings: BrokerSettings, lines: int = 30, marks: dict[Path, int] | None = None
) -> str:
    """The broker log's tail, plus the JVM's own output when it has any (crashes land there).

    ``marks`` (byte offsets per file) limits it to what the current run wrote.
    """
    parts = []
    for path in (settings.log_file, settings.stdout_file):
        text = logs.tail(path, lines, (marks or {}).get(path, 0))
        if text:
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(text))
    return "\n".join(parts) or f"(nothing new in the broker's logs in {settings.logs_dir})"


def stop(settings: BrokerSettings | None = None) -> StopResult:
    """SIGTERM for a controlled shutdown, SIGKILL after ``stop_timeout_s``."""
    settings = settings or BrokerSettings()
    t0 = time.monotonic()
    with _locked(settings):
        pid = live_pid(settings.pid_file)
        if pid is None:
            return StopResult("not_running", None, time.monotonic() - t0)
        outcome = _terminate(settings, pid)
        return StopResult(outcome, pid, time.monotonic() - t0)


def _terminate(settings: BrokerSettings, pid: int) -> Literal["stopped", "killed"]:
    outcome: Literal["stopped", "killed"] = "stopped"
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, settings.stop_timeout_s):
        outcome = "killed"
        _signal(pid, signal.SIGKILL)
        if not _wait_gone(pid, _KILL_WAIT_S):
            raise BrokerError(f"the broker (pid {pid}) is still alive after SIGKILL")
    remove_pid(settings.pid_file)
    return outcome


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise BrokerError(f"not allowed to signal the broker (pid {pid}): {exc}") from exc


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_state(pid) != "gone":
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def status(settings: BrokerSettings | None = None) -> StatusResult:
    settings = settings or BrokerSettings()
    pid = live_pid(settings.pid_file)
    answering = is_answering(settings.bootstrap, 2.0)
    return StatusResult(
        pid is not None, pid, settings.bootstrap, answering, settings.root, settings.log_file
    )
