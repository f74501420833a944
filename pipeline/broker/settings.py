"""Where the local broker keeps its jars, configuration, data and logs, and on which ports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

KAFKA_VERSION = "4.0.2"
"""The Kafka release resolved from Maven Central; must match ``kafka.version`` in pom.xml."""


def default_cache_dir() -> Path:
    """``$MSM_CACHE_DIR``, else ``~/.cache/msm``: jars are shared by every broker on the machine."""
    env = os.environ.get("MSM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "msm"


def default_kafka_home() -> Path | None:
    env = os.environ.get("KAFKA_HOME")
    return Path(env).expanduser() if env else None


@dataclass(frozen=True)
class BrokerSettings:
    """One local single-node KRaft broker.

    Each port gets its own state directory (``<cache>/broker-<port>`` unless ``state_dir`` is
    given), so a second broker for tests never shares data, pid or logs with the default one.
    Environment defaults are read when the settings are built, not at import.
    """

    host: str = "localhost"
    port: int = 9092
    controller_port: int = 0
    """0 means ``port + 1`` (9093 for the default port), so a second broker needs one flag."""
    cache_dir: Path = field(default_factory=default_cache_dir)
    state_dir: Path | None = None
    kafka_home: Path | None = field(default_factory=default_kafka_home)
    timeout_s: float = 60.0
    stop_timeout_s: float = 30.0
    heap: str = "1g"
    auto_create_topics: bool = True

    def __post_init__(self) -> None:
        if self.controller_port == 0:
            object.__setattr__(self, "controller_port", self.port + 1)
        for name, port in (("port", self.port), ("controller_port", self.controller_port)):
            if not 0 < port < 65536:
                raise ConfigError(f"broker {name} must be in 1..65535, got {port}")
        if self.port == self.controller_port:
            raise ConfigError(f"broker port and controller port are both {self.port}")
        if self.timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise ConfigError("broker timeouts must be positive")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def root(self) -> Path:
        """The state directory: data, config, logs and pid file of this broker."""
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        return self.cache_dir / f"broker-{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def server_properties(self) -> Path:
        return self.config_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.config_dir / "log4j2.xml"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        """The broker's own log (log4j), the one ``msm broker logs`` shows."""
        return self.logs_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        """The JVM's stdout/stderr: only what happens before or outside log4j (crashes)."""
        return self.logs_dir / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def kafka_dir(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}"

    @property
    def lib_dir(self) -> Path:
        """Where Maven copies the jars (ignored when ``kafka_home`` is a distribution)."""
        return self.kafka_dir / "lib"
