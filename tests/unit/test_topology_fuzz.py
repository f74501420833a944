"""Topology files, generated (hypothesis): loading one either succeeds or raises a
TopologyError whose every problem names a YAML path and what was expected; never anything
else, never a hang."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.topology import load_topology
from pipeline.topology.errors import TopologyError
from tests.fixtures.topologies import minimal, write_topology

FAST = settings(
    max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def refusal(path: Path) -> TopologyError | None:
    """The TopologyError loading ``path`` raises, None if it loads; anything else propagates."""
    try:
        load_topology(path)
    except TopologyError as exc:
        return exc
    return None


def load_or_explain(directory: Path, document: Any) -> None:
    error = refusal(write_topology(directory, document))
    if error is not None:
        assert error.problems, "an error lists its problems"
        for problem in error.problems:
            assert problem.path, problem
            assert problem.expected, problem
        assert str(error)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            found += paths(value, (*prefix, i))
    return found


@FAST
@given(st.data())
def test_any_value_anywhere_in_a_good_topology(tmp_path: Path, data: st.DataObject) -> None:
    document = minimal()
    where = data.draw(st.sampled_from(paths(document)[1:]))
    replacement = data.draw(values)
    target = document
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = copy.deepcopy(replacement)
    load_or_explain(tmp_path, document)


@FAST
@given(values)
def test_any_document(tmp_path: Path, document: Any) -> None:
    load_or_explain(tmp_path, document)


@FAST
@given(st.text(max_size=300))
def test_any_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(text, encoding="utf-8")
    error = refusal(path)
    assert error is None or error.problems


@FAST
@given(st.binary(max_size=300))
def test_any_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "topology.yaml"
    path.write_bytes(raw)
    error = refusal(path)
    assert error is None or error.problems


def test_a_billion_laughs_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{','.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "topology.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text())["i"][0][0] is not None  # aliases: shared, 9**9 deep
    error = refusal(path)
    assert error is not None
    assert error.problems
