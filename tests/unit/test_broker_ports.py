"""A port taken by something that is not Kafka is reported before any JVM starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.broker import BrokerError, BrokerSettings, start


def test_taken_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("localhost", 0))
        taken.listen()
        free.bind(("localhost", 0))
        port, cport = taken.getsockname()[1], free.getsockname()[1]
        free.close()
        settings = BrokerSettings(port=port, controller_port=cport, state_dir=tmp_path)
        with pytest.raises(BrokerError, match=f"port {port} on localhost is taken"):
            start(settings)
    assert not settings.pid_file.exists()
