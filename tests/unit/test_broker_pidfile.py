"""Stale, reused and garbage pid files are treated as "not running" and removed."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from pipeline.broker import BrokerSettings, status, stop
from pipeline.broker.pidfile import live_pid, process_state, write_pid


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


def _settings(tmp_path: Path) -> BrokerSettings:
    port = _free_port()
    return BrokerSettings(port=port, controller_port=_free_port(), state_dir=tmp_path)


def test_pid_of_a_finished_process_is_stale(tmp_path: Path) -> None:
    pid_file = tmp_path / "broker.pid"
    pid = _dead_pid()
    write_pid(pid_file, pid)
    assert process_state(pid) == "gone"
    assert live_pid(pid_file) is None
    assert not pid_file.exists()


def test_pid_reused_by_another_program_is_stale(tmp_path: Path) -> None:
    pid_file = tmp_path / "broker.pid"
    write_pid(pid_file, os.getpid())
    assert process_state(os.getpid()) == "other"
    assert live_pid(pid_file) is None
    assert not pid_file.exists()


def test_garbage_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "broker.pid"
    pid_file.write_text("not a pid\n")
    assert live_pid(pid_file) is None
    assert not pid_file.exists()


def test_status_and_stop_with_a_stale_pid_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_pid(settings.pid_file, _dead_pid())
    result = status(settings)
    assert not result.running
    assert result.pid is None
    assert not result.answering
    assert not settings.pid_file.exists()
    write_pid(settings.pid_file, _dead_pid())
    assert stop(settings).outcome == "not_running"
    assert not settings.pid_file.exists()
