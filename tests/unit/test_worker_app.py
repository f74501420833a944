"""The worker's Faust apps take MSM's settings, not whatever the shell environment says."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.topology import Topology, load_topology
from pipeline.worker.app import create_app, faust_env
from tests.fixtures.topologies import minimal, write_topology


def _topology(tmp_path: Path, client: dict[str, str] | None = None) -> Topology:
    doc = minimal()
    doc["kafka"] = {"bootstrap_servers": "localhost:9092", "client": client or {}}
    return load_topology(write_topology(tmp_path, doc))


def test_only_msm_faust_variables_reach_faust() -> None:
    env = {"PRODUCER_ACKS": "1", "STORE": "rocksdb://", "MSM_FAUST_BROKER_SESSION_TIMEOUT": "30"}
    assert faust_env(env) == {"BROKER_SESSION_TIMEOUT": "30"}


def test_stray_faust_variables_cannot_weaken_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRODUCER_ACKS", "1")
    monkeypatch.setenv("CONSUMER_AUTO_OFFSET_RESET", "latest")
    monkeypatch.setenv("MSM_FAUST_BROKER_HEARTBEAT_INTERVAL", "2")
    app = create_app(_topology(tmp_path), "frontend")
    assert app.conf.producer_acks == -1
    assert app.conf.consumer_auto_offset_reset == "earliest"
    assert app.conf.broker_heartbeat_interval == 2.0
    assert app.conf.id == "msm-test.frontend"


def test_security_settings_the_worker_cannot_apply_are_refused(tmp_path: Path) -> None:
    topology = _topology(tmp_path, {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"})
    with pytest.raises(ConfigError, match=r"sasl\.mechanism, security\.protocol"):
        create_app(topology, "frontend")


def test_the_producer_is_idempotent_with_acks_all(tmp_path: Path) -> None:
    producer = create_app(_topology(tmp_path), "frontend").producer
    settings = {**producer._settings_default(), **producer._settings_extra()}
    assert settings["acks"] == "all"
    assert settings["enable_idempotence"] is True
