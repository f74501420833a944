"""The broker's pid file, with pid reuse and zombies taken into account."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

_MAIN_CLASS = b"kafka.Kafka"


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def remove_pid(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)


def process_state(pid: int) -> Literal["gone", "other", "broker"]:
    """``broker`` while ``pid`` is a live (not zombie) JVM running kafka.Kafka.

    A pid file outlives its process; after a reboot or a crash the pid may belong to anything,
    so the command line is checked where /proc exists. ``other`` is also what a just-launched
    broker looks like for the instant before its shell execs java.
    """
    if pid <= 0:
        return "gone"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        pass
    if not Path("/proc/self").exists():
        return "broker"
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return "gone"
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return "gone"
    return "broker" if _MAIN_CLASS in cmdline.split(b"\0") else "other"


def is_broker_process(pid: int) -> bool:
    return process_state(pid) == "broker"


def live_pid(pid_file: Path) -> int | None:
    """The broker's pid, or None; a stale pid file (process gone or reused) is removed."""
    pid = read_pid(pid_file)
    if pid is None:
        if pid_file.exists():
            remove_pid(pid_file)
        return None
    if is_broker_process(pid):
        return pid
    remove_pid(pid_file)
    return None
