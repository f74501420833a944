"""``cdc:`` sources in topology.yaml: defaults, and every mistake reported at its YAML path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.topology import TopologyError, load_topology
from pipeline.topology.topics import plan_topics
from tests.fixtures.topologies import minimal, with_cdc, write_topology

Doc = dict[str, Any]


def test_a_source_loads_with_defaults(tmp_path: Path) -> None:
    topology = load_topology(write_topology(tmp_path, with_cdc()))
    spec = topology.cdc["items"]
    assert spec.name == "items"
    assert spec.slot_for(topology.namespace) == "msm_msm_test_items"  # '-' is not allowed
    assert spec.publication_for(topology.namespace) == spec.slot_for(topology.namespace)
    assert spec.rate_limit.count == 5_000
    assert spec.rate_limit.per == timedelta(seconds=1)
    assert (spec.lag.slow, spec.lag.pause) == (1_000, 10_000)
    assert spec.snapshot.initial is False
    assert spec.snapshot.chunk_rows == 1_000


def test_the_state_topic_is_planned_only_with_sources(tmp_path: Path) -> None:
    with_sources = load_topology(write_topology(tmp_path, with_cdc()))
    plans = {p.name: p for p in plan_topics(with_sources)}
    assert plans["msm-test.cdc"].partitions == 1
    assert plans["msm-test.cdc"].config["cleanup.policy"] == "compact"
    assert plans["msm-test.cdc"].layer == "scheduler"
    without = load_topology(write_topology(tmp_path / "plain", minimal()))
    assert "msm-test.cdc" not in {p.name for p in plan_topics(without)}


def _problem(tmp_path: Path, doc: Doc) -> str:
    with pytest.raises(TopologyError) as info:
        load_topology(write_topology(tmp_path, doc))
    return str(info.value)


def _shape_broken(doc: Doc) -> None:
    doc["cdc"]["items"]["event"] = "other.happened"


def _unknown_event(doc: Doc) -> None:
    doc["cdc"]["items"]["event"] = "item.chnged"


def _second_source_same_slot(doc: Doc) -> None:
    doc["cdc"]["copy"] = {**doc["cdc"]["items"], "slot": "msm_msm_test_items"}


CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("shape", _shape_broken, "cdc.items.event", "no field 'op'"),
    ("unknown event", _unknown_event, "cdc.items.event", "unknown event 'item.chnged'"),
    ("same slot", _second_source_same_slot, "cdc.copy.slot", "also used by source 'items'"),
]


@pytest.mark.parametrize(
    ("edit", "path", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cross_checks_name_the_path(
    tmp_path: Path, edit: Callable[[Doc], None], path: str, text: str
) -> None:
    doc = with_cdc()
    edit(doc)
    message = _problem(tmp_path, doc)
    assert path in message, message
    assert text in message, message


@pytest.mark.parametrize(
    ("field", "value", "path", "text"),
    [
        ("dsn_env", "not a var", "cdc.items.dsn_env", "an environment variable name"),
        ("table", "items; drop", "cdc.items.table", "a table name"),
        ("slot", "Bad-Slot", "cdc.items.slot", "a replication slot name"),
        ("lag", {"slow": 10, "pause": 5}, "cdc.items.lag.slow", "below pause (5)"),
        ("rate_limit", "fast", "cdc.items.rate_limit", "found 'fast'"),
        ("snapshot", {"chunk_rows": 0}, "cdc.items.snapshot.chunk_rows", "found 0"),
        ("key", "id; x", "cdc.items.key", "a column name"),
        ("dsn", "host=db", "cdc.items", "dsn"),
    ],
)
def test_field_mistakes_name_the_path(
    tmp_path: Path, field: str, value: object, path: str, text: str
) -> None:
    message = _problem(tmp_path, with_cdc(**{field: value}))
    assert path in message, message
    assert text in message, message
