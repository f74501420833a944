"""Secrets (SASL passwords in ``kafka.client``, ingress tokens) never show in what MSM prints:
CLI output, error messages, reprs, logs. Each check greps for a unique secret."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import ConfigError
from pipeline.http.auth import parse_tokens_text
from pipeline.topology import load_topology
from pipeline.worker.app import create_app
from tests.fixtures.topologies import minimal, write_topology

SECRET = f"s3cret-{uuid.uuid4().hex}"


def secured(tmp_path: Path, **client: object) -> Path:
    doc = minimal()
    doc["kafka"] = {
        "bootstrap_servers": "localhost:1",
        "client": {"security.protocol": "SASL_SSL", "sasl.password": SECRET, **client},
    }
    return write_topology(tmp_path, doc)


def test_topology_commands_never_print_the_sasl_password(tmp_path: Path) -> None:
    path = secured(tmp_path)
    for args in (["topology", "validate"], ["topology", "show"], ["topology", "show", "--json"]):
        result = CliRunner().invoke(cli, ["--topology", str(path), *args])
        assert SECRET not in result.output, args
    assert SECRET not in repr(load_topology(path))
    assert SECRET not in str(load_topology(path).kafka)


def test_an_invalid_client_setting_is_named_without_its_value(tmp_path: Path) -> None:
    path = secured(tmp_path, **{"sasl.username": ["not", "text", SECRET]})
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "validate"])
    assert result.exit_code != 0
    assert "sasl.username" in result.output
    assert SECRET not in result.output


def test_the_worker_refuses_sasl_naming_keys_not_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    topology = load_topology(secured(tmp_path))
    with pytest.raises(ConfigError) as refused:
        create_app(topology, "frontend")
    assert "sasl.password" in str(refused.value)
    assert SECRET not in str(refused.value)
    assert SECRET not in caplog.text


def test_ingress_token_errors_name_no_token() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_tokens_text(f"{SECRET}:no such;event types")
    assert SECRET not in str(refused.value)
    store = parse_tokens_text(f"{SECRET}:*")
    assert SECRET not in repr(store)
    assert SECRET not in str(store.authorize(f"Bearer {SECRET}x", ["e"]))
