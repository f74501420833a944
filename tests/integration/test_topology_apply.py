"""`msm topology apply` against the real broker: create, converge configs, grow only when asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# Typed here; confluent_kafka.admin imports them without re-exporting them for mypy.
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from pipeline.cli import cli
from pipeline.topology import Topology, load_topology
from pipeline.topology.apply import ConfigChange, PartitionChange, apply_topology
from pipeline.topology.topics import plan_topics
from tests.fixtures.topologies import minimal, write_topology

TIMEOUT_S = 30.0


@pytest.fixture
def namespace(admin: AdminClient, unique_name: Callable[[str], str]) -> Iterator[str]:
    """A fresh namespace; every topic under it is deleted after the test."""
    ns = unique_name("msmtopo")
    yield ns
    names = [t for t in admin.list_topics(timeout=TIMEOUT_S).topics if t.startswith(f"{ns}.")]
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=TIMEOUT_S).values():
        try:
            future.result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def topology(
    tmp_path: Path, namespace: str, kafka_bootstrap: str, **event: Any
) -> tuple[Topology, Path]:
    doc = minimal()
    doc["namespace"] = namespace
    doc["kafka"] = {"bootstrap_servers": kafka_bootstrap}
    doc["events"]["thing.created"].update(event)
    path = write_topology(tmp_path, doc)
    return load_topology(path), path


def partitions(admin: AdminClient, names: list[str]) -> dict[str, int]:
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    return {name: len(topics[name].partitions) for name in names}


def configs(admin: AdminClient, name: str) -> dict[str, str | None]:
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    return {key: entry.value for key, entry in entries.items()}


def wait_for_config(admin: AdminClient, name: str, key: str, value: str) -> None:
    """Config changes reach the broker through the metadata log: describe shows them shortly."""
    deadline = time.monotonic() + TIMEOUT_S
    while configs(admin, name)[key] != value:
        assert time.monotonic() < deadline, f"{name} {key} never became {value}"
        time.sleep(0.05)


def test_apply_creates_every_topic_once(
    tmp_path: Path, namespace: str, admin: AdminClient, kafka_bootstrap: str
) -> None:
    loaded, _ = topology(tmp_path, namespace, kafka_bootstrap)
    plans = plan_topics(loaded)

    dry = apply_topology(loaded, admin, dry_run=True)
    assert dry.dry_run
    assert set(dry.created) == {p.name for p in plans}
    assert not [t for t in admin.list_topics(timeout=TIMEOUT_S).topics if t.startswith(namespace)]

    report = apply_topology(loaded, admin)
    assert set(report.created) == {p.name for p in plans}
    assert (report.altered, report.grown, report.warnings) == ((), (), ())
    assert partitions(admin, [p.name for p in plans]) == {p.name: p.partitions for p in plans}
    for plan in plans:
        actual = configs(admin, plan.name)
        assert {key: actual[key] for key in plan.config} == dict(plan.config), plan.name

    again = apply_topology(loaded, admin)
    assert (again.created, again.altered, again.grown, again.would_grow) == ((), (), (), ())
    assert set(again.unchanged) == {p.name for p in plans}


def test_a_changed_config_is_set_back(
    tmp_path: Path, namespace: str, admin: AdminClient, kafka_bootstrap: str
) -> None:
    loaded, _ = topology(tmp_path, namespace, kafka_bootstrap, retention="2d")
    apply_topology(loaded, admin)
    ingress = f"{namespace}.in.thing.created"
    drifted = ConfigResource(
        ResourceType.TOPIC,
        ingress,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([drifted])[drifted].result(timeout=TIMEOUT_S)
    wait_for_config(admin, ingress, "retention.ms", "1000")
    expected = ConfigChange(ingress, "retention.ms", "1000", str(2 * 24 * 3600 * 1000))

    dry = apply_topology(loaded, admin, dry_run=True)
    assert dry.altered == (expected,)
    assert configs(admin, ingress)["retention.ms"] == "1000"

    report = apply_topology(loaded, admin)
    assert report.altered == (expected,)
    assert ingress not in report.unchanged
    wait_for_config(admin, ingress, "retention.ms", expected.new)
    assert apply_topology(loaded, admin).altered == ()


def test_partitions_grow_only_when_asked(
    tmp_path: Path, namespace: str, admin: AdminClient, kafka_bootstrap: str
) -> None:
    small, _ = topology(tmp_path, namespace, kafka_bootstrap, partitions=2)
    apply_topology(small, admin)
    ingress = f"{namespace}.in.thing.created"
    big, _ = topology(tmp_path, namespace, kafka_bootstrap, partitions=4)

    refused = apply_topology(big, admin)
    assert PartitionChange(ingress, 2, 4) in refused.would_grow
    assert refused.grown == ()
    assert any("--grow-partitions" in w for w in refused.warnings)
    assert partitions(admin, [ingress]) == {ingress: 2}

    dry = apply_topology(big, admin, grow_partitions=True, dry_run=True)
    assert PartitionChange(ingress, 2, 4) in dry.grown
    assert partitions(admin, [ingress]) == {ingress: 2}

    grown = apply_topology(big, admin, grow_partitions=True)
    assert PartitionChange(ingress, 2, 4) in grown.grown
    assert grown.would_grow == ()
    assert partitions(admin, [ingress]) == {ingress: 4}

    lowered = apply_topology(small, admin, grow_partitions=True)
    assert lowered.grown == ()
    assert any(w.startswith(f"{ingress}: has 4 partitions") for w in lowered.warnings)
    assert partitions(admin, [ingress]) == {ingress: 4}


def test_cli_apply(
    tmp_path: Path, namespace: str, admin: AdminClient, kafka_bootstrap: str
) -> None:
    loaded, path = topology(tmp_path, namespace, kafka_bootstrap)
    count = len(plan_topics(loaded))
    runner = CliRunner()

    dry = runner.invoke(cli, ["--topology", str(path), "topology", "apply", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would create {namespace}.in.thing.created" in dry.stdout.splitlines()
    assert (
        dry.stdout.splitlines()[-1]
        == f"dry run: {count} created, 0 config changes, 0 grown, 0 unchanged"
    )

    done = runner.invoke(cli, ["--topology", str(path), "topology", "apply"])
    assert done.exit_code == 0, done.output
    assert f"created {namespace}.tasks" in done.stdout.splitlines()

    bigger, _ = topology(tmp_path, namespace, kafka_bootstrap, partitions=3)
    grow = runner.invoke(cli, ["--topology", str(path), "topology", "apply", "--grow-partitions"])
    assert grow.exit_code == 0, grow.output
    assert f"grew {namespace}.in.thing.created: 2 -> 3 partitions" in grow.stdout.splitlines()
    assert bigger.events["thing.created"].partitions == 3
