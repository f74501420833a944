"""The metrics registry against docs/metrics.md, per-layer counters, lag and readiness logic."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from pipeline import headers as h
from pipeline.http.health import Readiness
from pipeline.metrics import LayerFlow, make_metrics
from pipeline.topology.topics import TopicNames
from pipeline.trace import current_context
from pipeline.worker.http_service import WorkerReadiness, app_not_ready
from pipeline.worker.lag_metrics import Offsets, dlq_sizes, subscriber_of, topic_lag

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(msm_[a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", re.M)


def _documented() -> dict[str, tuple[str, list[str]]]:
    found = {}
    for name, kind, labels in _ROW.findall(DOC.read_text()):
        names = [] if labels.strip() == "-" else [x.strip() for x in labels.split(",")]
        found[name.removesuffix("_total")] = (kind, names)
    return found


def _registered() -> dict[str, tuple[str, list[str]]]:
    metrics = make_metrics(CollectorRegistry())
    found = {}
    for value in vars(metrics).values():
        if hasattr(value, "_labelnames"):
            found[value._name] = (value._type, list(value._labelnames))
    return found


def test_docs_metrics_md_lists_every_metric_with_its_type_and_labels() -> None:
    assert _documented() == _registered()


def test_label_names_are_spelled_alike() -> None:
    labels = {label for _, names in _registered().values() for label in names}
    assert labels <= {
        "layer", "event_type", "subscriber", "reason", "outcome", "result", "version", "tier",
        "schedule", "topic", "source", "op",
    }  # fmt: skip


@dataclass
class _Task:
    headers: dict[str, bytes]


async def test_observed_counts_in_and_out_and_sets_the_log_context() -> None:
    metrics = make_metrics(CollectorRegistry())
    seen: list[Any] = []

    async def process(task: _Task) -> None:
        seen.append(current_context())

    run = LayerFlow(metrics, "execution").observed(process, "thumbs")
    headers = {h.EVENT_TYPE: b"file.uploaded", h.EVENT_ID: b"e1", h.TRACEPARENT: b"bad"}
    await run(_Task(headers))
    labels = {"layer": "execution", "event_type": "file.uploaded", "subscriber": "thumbs"}
    assert metrics.registry.get_sample_value("msm_events_in_total", labels) == 1
    assert metrics.registry.get_sample_value("msm_events_out_total", labels) == 1
    assert seen[0].event_id == "e1"
    assert seen[0].subscriber == "thumbs"
    assert seen[0].trace_id is None  # an invalid traceparent names no trace
    assert current_context() is None


def test_lag_sums_owned_partitions_from_committed_or_earliest() -> None:
    offsets = Offsets(
        earliest={("a", 0): 5, ("a", 1): 0, ("b", 0): 0},
        latest={("a", 0): 100, ("a", 1): 40, ("b", 0): 7},
    )
    owned = [("a", 0), ("a", 1), ("b", 0), ("c", 0)]
    committed: dict[tuple[str, int], int | None] = {("a", 0): 90, ("a", 1): None, ("b", 0): 9}
    assert topic_lag(owned, committed, offsets) == {"a": 10 + 40, "b": 0, "c": 0}


def test_dlq_size_is_end_minus_start_and_topics_map_to_subscribers() -> None:
    offsets = Offsets(earliest={("d", 0): 3, ("d", 1): 0}, latest={("d", 0): 10, ("d", 1): 2})
    assert dlq_sizes({"s": [("d", 0), ("d", 1)], "t": []}, offsets) == {"s": 9, "t": 0}
    names = TopicNames("msm")
    assert subscriber_of(names.sub("s"), names, ["r", "s"]) == "s"
    assert subscriber_of(names.execution("r"), names, ["r", "s"]) == "r"
    assert subscriber_of(names.ready, names, ["r", "s"]) == ""


async def test_ready_needs_kafka_and_every_layer_past_its_first_rebalance() -> None:
    async def kafka_ok() -> Readiness:
        return Readiness(True, "ready")

    joining = SimpleNamespace(rebalancing_count=0, rebalancing=False)
    running = SimpleNamespace(rebalancing_count=1, rebalancing=False)
    assert app_not_ready(joining) == "joining its consumer group"
    assert app_not_ready(SimpleNamespace(rebalancing_count=2, rebalancing=True)) == "rebalancing"
    check = WorkerReadiness(kafka_ok, {"flow": running, "delivery": joining})
    result = await check()
    assert not result.ready
    assert result.message == "layers not running yet: delivery"
    assert (await WorkerReadiness(kafka_ok, {"flow": running})()).ready
