"""`msm lag` renderings: the JSON document's shape and the tables grouped by layer."""

from __future__ import annotations

import io
import json
from datetime import timedelta

from rich.console import Console, RenderableType

from pipeline.ops.lag import GroupLag, LagRates, LagReport, Member, PartitionLag, TopicLag
from pipeline.ops.lag_view import group_by_layer, render_report, report_as_dict
from pipeline.ops.layers import (
    DELIVERY,
    EXECUTION,
    FRONTEND,
    Classifier,
    TopicRole,
    classify_topic,
    known_topics,
)

M = Member("m-1", "worker", "/10.0.0.1")
KNOWN = known_topics("msm", ["file.uploaded"], ["thumbnailer"], [timedelta(seconds=30)])


def _classify(topic: str) -> TopicRole:
    return classify_topic(topic, "msm", KNOWN)


CLASSIFY: Classifier = _classify


def _report() -> LagReport:
    exec_topic = TopicLag(
        "msm.exec.thumbnailer",
        (
            PartitionLag("msm.exec.thumbnailer", 0, 5, 9, M),
            PartitionLag("msm.exec.thumbnailer", 1, None, 3, M),
        ),
    )
    ingress = TopicLag("msm.in.file.uploaded", (PartitionLag("msm.in.file.uploaded", 0, 7, 7),))
    foreign = TopicLag("orders", (PartitionLag("orders", 0, 1, 2),))
    return LagReport(
        (
            GroupLag("msm-exec", "Stable", 1, (exec_topic,)),
            GroupLag("msm-front", "Empty", 0, (ingress, foreign)),
            GroupLag("idle", "Empty", 0, ()),
            GroupLag("gone", "Dead", 0, (), "consumer group 'gone' does not exist"),
        ),
        collected_at=1_700_000_000.25,
        monotonic=50.0,
    )


def _text(renderable: RenderableType) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_json_document_shape() -> None:
    doc = report_as_dict(_report(), CLASSIFY, note=None)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    assert set(doc) == {
        "version",
        "collected_at",
        "grouped_by_layer",
        "note",
        "total_lag",
        "groups",
    }
    assert doc["collected_at"] == "2023-11-14T22:13:20.250+00:00"
    assert doc["grouped_by_layer"] is True
    assert doc["total_lag"] == 4 + 0 + 1
    groups = doc["groups"]
    assert isinstance(groups, list)
    assert [g["group"] for g in groups if isinstance(g, dict)] == [
        "msm-exec",
        "msm-front",
        "idle",
        "gone",
    ]
    assert groups[0] == {
        "group": "msm-exec",
        "state": "Stable",
        "members": 1,
        "error": None,
        "total_lag": 4,
        "uncommitted_partitions": 1,
        "topics": [
            {
                "topic": "msm.exec.thumbnailer",
                "layer": EXECUTION,
                "owner": "thumbnailer",
                "total_lag": 4,
                "uncommitted_partitions": 1,
                "partitions": [
                    {
                        "partition": 0,
                        "committed": 5,
                        "end": 9,
                        "lag": 4,
                        "member_id": "m-1",
                        "client_id": "worker",
                        "host": "/10.0.0.1",
                    },
                    {
                        "partition": 1,
                        "committed": None,
                        "end": 3,
                        "lag": None,
                        "member_id": "m-1",
                        "client_id": "worker",
                        "host": "/10.0.0.1",
                    },
                ],
            }
        ],
    }
    assert groups[3] == {
        "group": "gone",
        "state": "Dead",
        "members": 0,
        "error": "consumer group 'gone' does not exist",
        "total_lag": 0,
        "uncommitted_partitions": 0,
        "topics": [],
    }


def test_json_without_topology_has_null_roles_and_the_note() -> None:
    doc = report_as_dict(_report(), None, note="no topology at x.yaml")
    assert doc["grouped_by_layer"] is False
    assert doc["note"] == "no topology at x.yaml"
    groups = doc["groups"]
    assert isinstance(groups, list)
    front = groups[1]
    assert isinstance(front, dict)
    topics = front["topics"]
    assert isinstance(topics, list)
    assert [(t["layer"], t["owner"]) for t in topics if isinstance(t, dict)] == [
        (None, None),
        (None, None),
    ]


def test_rows_grouped_by_layer() -> None:
    report = _report()
    rows = [(g, t) for g in report.groups for t in g.topics]
    sections = group_by_layer(rows, CLASSIFY)
    assert {
        layer: [(r.owner, t.topic) for r, _, t in entries] for layer, entries in sections.items()
    } == {
        FRONTEND: [("file.uploaded", "msm.in.file.uploaded")],
        EXECUTION: [("thumbnailer", "msm.exec.thumbnailer")],
        "other": [(None, "orders")],
    }
    assert DELIVERY not in sections


def test_table_lists_layers_in_pipeline_order_with_totals_and_rates() -> None:
    report = _report()
    rates = LagRates(2.0, {"msm-exec": -1.5}, {("msm-exec", "msm.exec.thumbnailer"): -1.5})
    text = _text(render_report(report, CLASSIFY, rates))
    assert text.index("frontend") < text.index("execution") < text.index("other")
    assert "-1.5" in text
    assert "no committed offsets" in text  # the idle group
    assert "does not exist" in text
    total_line = next(line for line in text.splitlines() if "total" in line)
    assert "5" in total_line


def test_no_groups_says_so() -> None:
    text = _text(render_report(LagReport((), 1_700_000_000.0, 1.0)))
    assert "no consumer groups" in text


def test_table_without_topology_says_why() -> None:
    text = _text(render_report(_report(), None, note="no topology at x.yaml"))
    assert "layer" not in text
    assert "no topology at x.yaml" in text
    assert "msm.exec.thumbnailer" in text
