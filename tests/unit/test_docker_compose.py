"""docker-compose.yml cannot run here (no Docker engine): keep it honest against msm broker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.broker import KAFKA_VERSION, BrokerSettings
from pipeline.broker.config import server_properties
from pipeline.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _kafka_env() -> dict[str, str]:
    env = _compose()["services"]["kafka"]["environment"]
    assert isinstance(env, dict)
    return {str(k): str(v) for k, v in env.items()}


def test_services_and_image_version_match_the_local_broker() -> None:
    services = _compose()["services"]
    assert {"kafka", "topology", "worker"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["topology"]["build"] == "."
    assert services["worker"]["image"] == services["topology"]["image"]


def test_host_port_is_the_local_broker_port_and_topology_bootstrap() -> None:
    settings = BrokerSettings()
    ports = _compose()["services"]["kafka"]["ports"]
    assert f"{settings.port}:{settings.port}" in ports
    env = _kafka_env()
    assert f"PLAINTEXT_HOST://localhost:{settings.port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert load_topology(ROOT / "topology.yaml").kafka.bootstrap_servers == settings.bootstrap


def test_kraft_settings_match_the_generated_server_properties() -> None:
    props = server_properties(BrokerSettings())
    env = _kafka_env()
    for key in (
        "process.roles",
        "node.id",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "group.initial.rebalance.delay.ms",
    ):
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert env[env_key] == props[key], key


def test_containers_reach_kafka_on_an_advertised_internal_listener() -> None:
    env = _kafka_env()
    internal = re.search(r"PLAINTEXT://([\w.-]+):(\d+)", env["KAFKA_ADVERTISED_LISTENERS"])
    assert internal is not None
    host, port = internal.groups()
    for name in ("topology", "worker"):
        service = _compose()["services"][name]
        assert service["environment"]["MSM_BOOTSTRAP_SERVERS"] == f"{host}:{port}"
    assert f"PLAINTEXT://:{port}" in env["KAFKA_LISTENERS"]


def test_the_topology_service_applies_the_topology_the_image_ships() -> None:
    services = _compose()["services"]
    assert services["topology"]["command"] == ["topology", "apply"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY topology.yaml" in dockerfile
    assert "COPY schemas" in dockerfile
    assert "MSM_TOPOLOGY=/app/topology.yaml" in dockerfile
