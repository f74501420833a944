"""A second, throw-away broker on free ports: start, idempotence, status, logs, stop.

Never touches the shared broker on 9092: every broker here has its own ports and state dir.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ResourceType,
)

from pipeline.broker import (
    BrokerError,
    BrokerSettings,
    BrokerStartTimeoutError,
    classpath,
    is_answering,
    start,
    status,
    stop,
)
from pipeline.broker.pidfile import process_state
from pipeline.broker.tools import require_java


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("localhost", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def settings(tmp_path: Path, kafka_bootstrap: str) -> Iterator[BrokerSettings]:
    port, cport = _free_ports(2)
    s = BrokerSettings(port=port, controller_port=cport, state_dir=tmp_path / "broker")
    assert s.bootstrap != kafka_bootstrap
    yield s
    stop(s)


def test_library_lifecycle(settings: BrokerSettings, tmp_path: Path) -> None:
    first = start(settings)
    assert first.outcome == "started"
    assert first.pid is not None
    assert is_answering(settings.bootstrap, 5.0)

    again = start(settings)
    assert again.outcome == "already_running"
    assert again.pid == first.pid

    elsewhere = start(replace(settings, state_dir=tmp_path / "other"))
    assert elsewhere.outcome == "external"
    assert elsewhere.pid is None

    running = status(settings)
    assert (running.running, running.pid, running.answering) == (True, first.pid, True)
    assert "Kafka Server started" in settings.log_file.read_text()

    stopped = stop(settings)
    assert (stopped.outcome, stopped.pid) == ("stopped", first.pid)
    after = status(settings)
    assert (after.running, after.pid, after.answering) == (False, None, False)
    assert not settings.pid_file.exists()
    assert process_state(first.pid) == "gone"
    assert stop(settings).outcome == "not_running"


def test_classpath_runs_kafka_tools(settings: BrokerSettings) -> None:
    start(settings)
    out = subprocess.run(
        [
            require_java(),
            "-cp",
            classpath(),
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            settings.bootstrap,
            "--create",
            "--topic",
            "cp-check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Created topic cp-check" in out.stdout


def test_cli_lifecycle(settings: BrokerSettings) -> None:
    from pipeline.cli import cli  # here, so a broken sibling command fails only this test

    args = [
        "--port",
        str(settings.port),
        "--controller-port",
        str(settings.controller_port),
        "--state-dir",
        str(settings.root),
    ]
    runner = CliRunner()

    def msm(*command: str) -> str:
        result = runner.invoke(cli, ["broker", *command, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    started = msm("start")
    assert f"broker started (pid {status(settings).pid}) on {settings.bootstrap}" in started
    assert "formatted a new KRaft log dir" in started
    assert "broker already running" in msm("start")
    assert f"running (pid {status(settings).pid}) on {settings.bootstrap}, answering: yes" in (
        msm("status")
    )
    logs = msm("logs", "-n", "400")
    assert "Kafka Server started" in logs
    assert len(msm("logs", "-n", "3").splitlines()) == 3
    assert "broker stopped" in msm("stop")
    assert msm("status").strip() == "stopped"
    assert msm("stop").strip() == "broker is not running"


def test_crash_during_start_up_shows_the_jvm_output(settings: BrokerSettings) -> None:
    with pytest.raises(BrokerError) as info:
        start(replace(settings, heap="nonsense"))
    assert "exited during start-up" in str(info.value)
    assert "Invalid maximum heap size" in str(info.value)
    assert not settings.pid_file.exists()


def test_timeout_stops_the_broker_and_shows_the_log(settings: BrokerSettings) -> None:
    with pytest.raises(BrokerStartTimeoutError) as info:
        start(replace(settings, timeout_s=0.01))
    assert f"did not answer on {settings.bootstrap} within 0.01 s" in str(info.value)
    assert "it was stopped" in str(info.value)
    assert not settings.pid_file.exists()
    assert not status(settings).running


def test_topic_factory_creates_topics_with_leaders(
    topic_factory: Callable[..., str], admin: AdminClient, unique_name: Callable[[str], str]
) -> None:
    """The shared fixtures (conftest) against the session broker: only a throw-away topic."""
    name = topic_factory(partitions=3, config={"retention.ms": "60000"}, prefix="broker/fixture")
    assert name.startswith("broker-fixture-")
    assert unique_name("x") != unique_name("x")
    topic = admin.list_topics(topic=name, timeout=10).topics[name]
    assert len(topic.partitions) == 3
    resource = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "60000"
