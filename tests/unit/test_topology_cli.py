"""`msm topology validate` and `msm topology show` (apply is in the integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.topology import load_topology
from pipeline.topology.topics import plan_topics
from tests.fixtures.topologies import FIXTURES, REPO, minimal, write_topology


def test_validate_the_example() -> None:
    result = CliRunner().invoke(cli, ["topology", "validate", str(REPO / "topology.yaml")])
    assert result.exit_code == 0, result.output
    topology = load_topology(REPO / "topology.yaml")
    assert result.stdout == (
        f"ok: {len(topology.events)} events, {len(topology.subscribers)} subscribers, "
        f"{len(topology.schedules)} schedules\n"
    )


def test_validate_defaults_to_the_root_topology_option(tmp_path: Path) -> None:
    path = write_topology(tmp_path, minimal())
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 2 events, 2 subscribers, 1 schedules\n"


def test_validate_reports_every_problem_and_exits_1() -> None:
    """The issue's acceptance case, through the command line."""
    path = FIXTURES / "topology_broken.yaml"
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "validate"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == f"3 problems in {path}"
    assert sorted(line.split(": ")[1] for line in lines[:-1]) == [
        'events["other.happened"].schema',
        "subscribers.indexer.events[1]",
        "subscribers.thumbnailer.retires",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines[:-1])
    assert result.stdout == ""


def test_show_json_lists_the_plan(tmp_path: Path) -> None:
    path = write_topology(tmp_path, minimal())
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    plans = plan_topics(load_topology(path))
    assert shown["namespace"] == "msm-test"
    assert [t["name"] for t in shown["topics"]] == [p.name for p in plans]
    assert [t["config"] for t in shown["topics"]] == [dict(p.config) for p in plans]
    assert [t["partitions"] for t in shown["topics"]] == [p.partitions for p in plans]
    assert {t["layer"] for t in shown["topics"]} == {
        "frontend",
        "scheduler",
        "flow",
        "delivery",
        "execution",
    }


def test_show_table_names_every_topic(tmp_path: Path) -> None:
    path = write_topology(tmp_path, minimal())
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "show"])
    assert result.exit_code == 0, result.output
    for plan in plan_topics(load_topology(path)):
        assert plan.name in result.stdout
    assert "thumbnailer" in result.stdout
    assert "examples.handlers:cleanup" in result.stdout


def test_show_with_a_broken_topology_is_an_error() -> None:
    path = FIXTURES / "topology_broken.yaml"
    result = CliRunner().invoke(cli, ["--topology", str(path), "topology", "show"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "subscribers.thumbnailer.retires" in result.stderr
