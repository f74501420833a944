"""server.properties and log4j2 content, cluster ids, and the pom's pinned version."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.broker import KAFKA_VERSION, BrokerSettings
from pipeline.broker.config import (
    log4j2_xml,
    new_cluster_id,
    render_properties,
    server_properties,
    write_config,
)
from pipeline.broker.jars import POM


def _parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_single_node_kraft_properties(tmp_path: Path) -> None:
    s = BrokerSettings(port=19092, controller_port=19093, state_dir=tmp_path)
    props = _parse(render_properties(server_properties(s)))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@localhost:19093"
    assert props["listeners"] == "PLAINTEXT://localhost:19092,CONTROLLER://localhost:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://localhost:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["auto.create.topics.enable"] == "true"


def test_auto_create_can_be_turned_off(tmp_path: Path) -> None:
    s = BrokerSettings(state_dir=tmp_path, auto_create_topics=False)
    assert server_properties(s)["auto.create.topics.enable"] == "false"


def test_backslashes_are_escaped_for_java() -> None:
    assert render_properties({"log.dirs": r"C:\kafka"}) == "log.dirs=C:\\\\kafka\n"


def test_log4j2_config_is_xml_writing_the_log_file(tmp_path: Path) -> None:
    s = BrokerSettings(state_dir=tmp_path / "a&b")
    root = ET.fromstring(log4j2_xml(s))  # noqa: S314 (our own generated XML)
    rolling = root.find("Appenders/RollingFile")
    assert rolling is not None
    assert rolling.get("fileName") == str(s.log_file)
    assert root.find("Loggers/Root/AppenderRef") is not None


def test_write_config_creates_both_files(tmp_path: Path) -> None:
    s = BrokerSettings(state_dir=tmp_path)
    write_config(s)
    assert _parse(s.server_properties.read_text())["log.dirs"] == str(s.data_dir)
    assert s.log4j_config.read_text().startswith("<?xml")
    assert s.logs_dir.is_dir()


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_pom_pins_the_same_kafka_version() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(POM).getroot()  # noqa: S314 (the repo's own pom)
    version = pom.find("m:properties/m:kafka.version", ns)
    assert version is not None
    assert version.text == KAFKA_VERSION
