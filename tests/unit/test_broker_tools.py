"""Missing or old java/mvn give a message that says what to install; jar resolution order."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipeline.broker import BrokerError, BrokerSettings, classpath, ensure_jars
from pipeline.broker.tools import parse_java_major, require_java, require_mvn


def _fake_java(bin_dir: Path, version: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-01' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2" 2019-01-15 LTS', 11),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_missing_java_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError) as info:
        require_java()
    message = str(info.value)
    assert "java was not found" in message
    assert "openjdk-17-jre-headless" in message
    assert "docker compose up" in message


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_java(tmp_path, "11.0.2")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Java 11, Kafka needs 17\+"):
        require_java()


def test_java_17_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_java(tmp_path, "17.0.1")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require_java() == str(tmp_path / "java")


def test_missing_mvn_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(BrokerError) as info:
        require_mvn()
    assert "apt-get install maven" in str(info.value)
    assert "KAFKA_HOME" in str(info.value)


def test_fetch_without_mvn_fails_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_java(tmp_path / "bin", "17.0.1")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    settings = BrokerSettings(cache_dir=tmp_path / "cache", kafka_home=None)
    with pytest.raises(BrokerError, match="apt-get install maven"):
        ensure_jars(settings)


def test_kafka_home_distribution_is_used_without_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.0.2.jar").write_bytes(b"")
    settings = BrokerSettings(cache_dir=tmp_path / "cache", kafka_home=tmp_path / "kafka")
    assert ensure_jars(settings) == libs
    assert classpath(settings) == f"{libs}/*"


def test_kafka_home_without_jars_falls_back_to_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    settings = BrokerSettings(cache_dir=tmp_path / "cache", kafka_home=tmp_path / "not-kafka")
    settings.lib_dir.mkdir(parents=True)
    (settings.kafka_dir / "complete").write_text("kafka 4.0.2\n")
    assert ensure_jars(settings) == settings.lib_dir


def test_half_copied_cache_is_fetched_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Jars without the completion marker do not count: Maven (here missing) is asked again."""
    monkeypatch.setattr("shutil.which", lambda name: None)
    settings = BrokerSettings(cache_dir=tmp_path / "cache", kafka_home=None)
    settings.lib_dir.mkdir(parents=True)
    (settings.lib_dir / "kafka_2.13-4.0.2.jar").write_bytes(b"")
    with pytest.raises(BrokerError, match="not found on PATH"):
        ensure_jars(settings)
