"""`msm lag` option handling and topology fallback, without a broker."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.cli.lag import _load

EXAMPLE = Path(__file__).parents[2] / "topology.yaml"


def test_count_needs_watch() -> None:
    result = CliRunner().invoke(cli, ["lag", "--json", "--count", "2"])
    assert result.exit_code == 2
    assert "--count only applies to --watch" in result.output


def test_missing_topology_degrades_with_a_note(tmp_path: Path) -> None:
    topology, note = _load(tmp_path / "absent.yaml")
    assert topology is None
    assert note is not None
    assert "no topology at" in note
    assert "not grouped by layer" in note


def test_invalid_topology_degrades_with_the_first_problem(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("namespace: 'not a namespace!'\nevents: {}\n")
    topology, note = _load(path)
    assert topology is None
    assert note is not None
    assert "did not load" in note
    assert "namespace" in note


def test_valid_topology_loads_without_a_note() -> None:
    topology, note = _load(EXAMPLE)
    assert note is None
    assert topology is not None
    assert topology.namespace == "msm"
