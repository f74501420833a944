"""Loading topology.yaml: the example loads, and every kind of problem is reported with its path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.topology import Problem, Rate, TopologyError, load_topology
from pipeline.topology.errors import render_path
from pipeline.topology.models import DEFAULT_DELAY_TIERS
from tests.fixtures.topologies import FIXTURES, REPO, minimal, write_topology

Doc = dict[str, Any]


def problems_of(path: Path) -> tuple[Problem, ...]:
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return info.value.problems


def test_the_example_topology_loads() -> None:
    topology = load_topology(REPO / "topology.yaml")
    assert topology.namespace == "msm"
    assert set(topology.events) >= {"file.uploaded", "user.deleted", "payment.captured"}
    uploaded = topology.events["file.uploaded"]
    assert uploaded.name == "file.uploaded"
    assert uploaded.schema_path == REPO / "schemas" / "file_uploaded.v2.avsc"
    assert uploaded.previous_schemas == (REPO / "schemas" / "file_uploaded.v1.avsc",)
    assert uploaded.key == "file_id"
    thumbnailer = topology.subscribers["thumbnailer"]
    assert thumbnailer.rate_limit == Rate(count=500, per=timedelta(seconds=1))
    assert thumbnailer.retry.max == timedelta(minutes=5)
    assert topology.subscribers["search-indexer"].ordered is True
    assert topology.subscribers["receipt-mailer"].canary is not None
    assert len(topology.subscribers) >= 3
    assert len(topology.schedules) >= 1
    assert topology.source_path == REPO / "topology.yaml"


def test_defaults_and_resolution(tmp_path: Path) -> None:
    doc = minimal()
    del doc["delay_tiers"]
    topology = load_topology(write_topology(tmp_path, doc))
    assert topology.delay_tiers == DEFAULT_DELAY_TIERS
    assert topology.kafka.bootstrap_servers == "localhost:9092"
    assert (topology.kafka.replication_factor, topology.kafka.min_insync_replicas) == (1, 1)
    other = topology.events["other.happened"]
    assert (other.partitions, other.key, other.retention, other.max_bytes) == (6, None, None, 2**20)
    assert other.schema_path == tmp_path / "schemas" / "other.avsc"
    indexer = topology.subscribers["indexer"]
    assert indexer.name == "indexer"
    assert indexer.dedup_window == timedelta(hours=1)
    assert indexer.priority == "normal"
    assert topology.schedules["nightly"].timezone == "UTC"
    assert topology.schedules["nightly"].missed == "skip"


def test_models_are_frozen(tmp_path: Path) -> None:
    topology = load_topology(write_topology(tmp_path, minimal()))
    with pytest.raises(ValueError, match="frozen"):
        topology.namespace = "other"


def test_delay_tiers_are_sorted(tmp_path: Path) -> None:
    doc = minimal()
    doc["delay_tiers"] = ["1h", "1s", "365d", "30s"]
    topology = load_topology(write_topology(tmp_path, doc))
    assert topology.delay_tiers == (
        timedelta(seconds=1),
        timedelta(seconds=30),
        timedelta(hours=1),
        timedelta(days=365),
    )


def test_environment_overrides_bootstrap_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSM_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert load_topology(write_topology(tmp_path, minimal())).kafka.bootstrap_servers == (
        "kafka.example:9092"
    )


def test_client_settings_become_strings(tmp_path: Path) -> None:
    doc = minimal()
    doc["kafka"] = {"client": {"linger.ms": 5, "enable.idempotence": True}}
    topology = load_topology(write_topology(tmp_path, doc))
    assert topology.kafka.client == {"linger.ms": "5", "enable.idempotence": "true"}


def test_acceptance_three_problems_reported_together() -> None:
    """A misspelled key, an unknown event and a missing schema file: all three, with paths."""
    path = FIXTURES / "topology_broken.yaml"
    problems = problems_of(path)
    assert {p.path for p in problems} == {
        "subscribers.thumbnailer.retires",
        "subscribers.indexer.events[1]",
        'events["other.happened"].schema',
    }
    by_path = {p.path: p for p in problems}
    assert "did you mean 'retry'" in str(by_path["subscribers.thumbnailer.retires"])
    assert "'thing.deleted'" in by_path["subscribers.indexer.events[1]"].found
    assert "does-not-exist.avsc" in by_path['events["other.happened"].schema'].found
    assert all(p.file == str(path) for p in problems)


def test_error_renders_one_problem_per_line(tmp_path: Path) -> None:
    doc = minimal()
    doc["subscribers"]["thumbnailer"]["retry"]["max_attempts"] = 0
    doc["events"]["thing.created"]["partitions"] = 0
    path = write_topology(tmp_path, doc)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    assert isinstance(info.value, ConfigError)
    assert str(info.value).splitlines() == [
        f'{path}: events["thing.created"].partitions: found 0, expected an integer >= 1',
        f"{path}: subscribers.thumbnailer.retry.max_attempts: found 0, expected an integer >= 1",
    ]


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write_topology(tmp_path, "events:\n  a.b: {schema: x\n  c: [1, 2\n")
    (problem,) = problems_of(path)
    assert problem.path.startswith("line ")
    assert ", column " in problem.path
    assert problem.expected == "valid YAML"


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    path = write_topology(tmp_path, "events:\n  a.b: {schema: x.avsc}\n  a.b: {schema: y.avsc}\n")
    (problem,) = problems_of(path)
    assert problem.path == "line 3, column 3"
    assert "duplicate key 'a.b'" in problem.found


@pytest.mark.parametrize(
    ("text", "found"), [("", "an empty file"), ("- a\n", "a list"), ("42\n", "42")]
)
def test_the_document_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    (problem,) = problems_of(write_topology(tmp_path, text))
    assert (problem.path, problem.found) == ("<top>", found)


def test_a_missing_file_is_a_problem_too(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "absent.yaml")
    assert (problem.path, problem.found) == ("<file>", "no such file")


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        (
            ("subscribers", "thumbnailer", "retry", "max_attempts"),
            "subscribers.thumbnailer.retry.max_attempts",
        ),
        (("events", "file.uploaded", "partitions"), 'events["file.uploaded"].partitions'),
        (("events", "a.b", "previous_schemas", 0), 'events["a.b"].previous_schemas[0]'),
        (("subscribers", "search-indexer"), "subscribers.search-indexer"),
        (("events", 'we"ird'), 'events["we\\"ird"]'),
        ((), "<top>"),
    ],
)
def test_render_path(parts: tuple[str | int, ...], text: str) -> None:
    assert render_path(parts) == text


def test_topology_requires_an_event(tmp_path: Path) -> None:
    doc = minimal()
    doc["events"] = {}
    doc["subscribers"] = {}
    doc["schedules"] = {}
    (problem,) = problems_of(write_topology(tmp_path, doc))
    assert (problem.path, problem.found, problem.expected) == ("events", "{}", "at least 1 item(s)")


def test_a_schedule_payload_that_does_not_fit_its_event_is_a_problem(tmp_path: Path) -> None:
    doc = minimal()
    doc["schedules"]["nightly"]["payload"] = {"key": 5, "extra": True}
    found = {p.path: p for p in problems_of(write_topology(tmp_path, doc))}
    assert set(found) == {"schedules.nightly.payload.key", "schedules.nightly.payload.extra"}
    assert "string" in found["schedules.nightly.payload.key"].expected
