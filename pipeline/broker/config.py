"""The broker's server.properties and log4j2 config, and formatting its KRaft log dir once."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path
from xml.sax.saxutils import quoteattr

from pipeline.broker.errors import BrokerError
from pipeline.broker.settings import BrokerSettings

_FORMAT_TIMEOUT_S = 120.0


def server_properties(settings: BrokerSettings) -> dict[str, str]:
    """One combined broker+controller node; internal topics need replication factor 1 here.

    Auto-creation stays on (Kafka's default): MSM creates its own topics with
    ``topology apply``, but clients and tools that expect it keep working on the local broker.
    """
    host, port, cport = settings.host, settings.port, settings.controller_port
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "auto.create.topics.enable": "true" if settings.auto_create_topics else "false",
        "delete.topic.enable": "true",
        "log.dirs": str(settings.data_dir),
    }


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{key}={_escape(value)}\n" for key, value in props.items())


def _escape(value: str) -> str:
    """Java properties treat backslashes as escapes (a Windows-style path would break)."""
    return value.replace("\\", "\\\\")


def log4j2_xml(settings: BrokerSettings) -> str:
    """A size-capped rolling log at INFO, so a long-running local broker does not fill the disk."""
    log = str(settings.log_file)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName={quoteattr(log)} filePattern={quoteattr(log + ".%i")}>
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="20 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
"""


def write_config(settings: BrokerSettings) -> None:
    """Rewritten on every start, so changed settings take effect without a manual cleanup."""
    settings.config_dir.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    settings.server_properties.write_text(render_properties(server_properties(settings)))
    settings.log4j_config.write_text(log4j2_xml(settings))


def new_cluster_id() -> str:
    """A Kafka Uuid string (url-safe base64, 22 chars); Kafka rejects ids starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def is_formatted(data_dir: Path) -> bool:
    return (data_dir / "meta.properties").is_file()


def format_storage(settings: BrokerSettings, java: str, lib_dir: Path) -> bool:
    """Formats the log dir unless already done; True if it formatted.

    A plain format, not ``--standalone``: the quorum is given by controller.quorum.voters.
    """
    if is_formatted(settings.data_dir):
        return False
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        java,
        f"-Dlog4j2.configurationFile={settings.log4j_config}",
        "-cp",
        str(lib_dir / "*"),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        new_cluster_id(),
        "-c",
        str(settings.server_properties),
    ]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"formatting {settings.data_dir} took over {exc.timeout} s") from exc
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise BrokerError(f"could not format the broker's log dir {settings.data_dir}:\n{tail}")
    return True
