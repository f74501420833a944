"""BrokerSettings defaults, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.broker import BrokerSettings
from pipeline.errors import ConfigError


def test_defaults_follow_the_documented_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSM_CACHE_DIR", raising=False)
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    s = BrokerSettings()
    cache = Path.home() / ".cache" / "msm"
    assert (s.host, s.port, s.controller_port) == ("localhost", 9092, 9093)
    assert s.bootstrap == "localhost:9092"
    assert s.cache_dir == cache
    assert s.kafka_home is None
    assert s.timeout_s == 60.0
    assert s.root == cache / "broker-9092"
    assert s.data_dir == s.root / "data"
    assert s.pid_file == s.root / "broker.pid"
    assert s.server_properties == s.root / "config" / "server.properties"
    assert s.log_file.parent == s.root / "logs"
    assert s.lib_dir == cache / "kafka-4.0.2" / "lib"


def test_environment_is_read_when_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MSM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path / "kafka"))
    s = BrokerSettings(port=19092)
    assert s.cache_dir == tmp_path / "cache"
    assert s.kafka_home == tmp_path / "kafka"
    assert s.controller_port == 19093
    assert s.root == tmp_path / "cache" / "broker-19092"
    assert s.lib_dir == tmp_path / "cache" / "kafka-4.0.2" / "lib"


def test_explicit_overrides(tmp_path: Path) -> None:
    s = BrokerSettings(port=29092, controller_port=29999, state_dir=tmp_path, timeout_s=5)
    assert s.controller_port == 29999
    assert s.root == tmp_path
    assert s.data_dir == tmp_path / "data"
    assert s.bootstrap == "localhost:29092"


def test_settings_are_frozen() -> None:
    s = BrokerSettings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]  # asserting that assignment is refused at run time


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"port": 9092, "controller_port": 9092},
        {"timeout_s": 0},
        {"stop_timeout_s": -1},
    ],
)
def test_invalid_settings_are_config_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        BrokerSettings(**kwargs)  # type: ignore[arg-type]  # mixed int fields, checked at run time


def test_pom_pins_the_same_kafka_version_as_the_settings() -> None:
    import re
    from pathlib import Path

    from pipeline.broker import KAFKA_VERSION

    pom = (Path(__file__).resolve().parents[2] / "pipeline/broker/pom.xml").read_text()
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert found is not None
    assert found.group(1) == KAFKA_VERSION
    assert KAFKA_VERSION.startswith("4.0.")
