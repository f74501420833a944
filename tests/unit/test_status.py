"""`msm status`: assembling layers, workers and canaries from fake data, the JSON document and
the screen; and the exit code when the broker is unreachable (a port where nothing listens)."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console, RenderableType

from pipeline.cli import cli
from pipeline.ops.lag import GroupLag, LagReport, Member, PartitionLag, TopicLag
from pipeline.ops.layers import classifier_for
from pipeline.ops.rates import RateSampler
from pipeline.ops.status import (
    BrokerHealth,
    BrokerNode,
    CanaryReading,
    CanaryStatus,
    DlqCount,
    Status,
    configured_canaries,
    layer_statuses,
    parse_canary_metrics,
    summarize_topology,
    workers_of,
)
from pipeline.ops.status_view import render_status, status_as_dict
from pipeline.topology import Topology, load_topology
from tests.fixtures.topologies import minimal, write_topology

A = Member("m-a", "worker-a", "/10.0.0.1")
B = Member("m-b", "worker-b", "/10.0.0.2")
IDLE = Member("m-c", "worker-c", "/10.0.0.3")


def _topology(tmp_path: Path) -> Topology:
    doc = minimal()
    doc["namespace"] = "ns"
    doc["subscribers"]["thumbnailer"]["canary"] = {
        "handler": "examples.handlers:cleanup_v2",
        "percent": 20,
    }
    return load_topology(write_topology(tmp_path, doc))


def _report(at: float, committed: int, end: int) -> LagReport:
    sub = "ns.sub.thumbnailer"
    delivery = GroupLag(
        "ns.delivery",
        "Stable",
        3,
        (
            TopicLag(
                sub,
                (PartitionLag(sub, 0, committed, end, A), PartitionLag(sub, 1, 5, 5, B)),
            ),
        ),
        member_list=(A, B, IDLE),
    )
    missing = GroupLag("ns.scheduler", "Dead", 0, (), "consumer group 'x' does not exist")
    return LagReport((delivery, missing), 1_700_000_000.0 + at, at)


def _status(tmp_path: Path) -> Status:
    topology = _topology(tmp_path)
    sampler = RateSampler(half_life_s=0)
    sampler.update(_report(0, 0, 100))
    report = _report(1, 30, 110)
    layers = layer_statuses("ns", report, sampler.update(report), classifier_for(topology))
    canaries = configured_canaries(
        topology,
        {"http://w1/metrics": {"thumbnailer": (0.0, 1.0)}, "http://w2/metrics": "refused"},
    )
    return Status(
        BrokerHealth("k:9092", True, None, "cluster-1", 1, (BrokerNode(1, "k", 9092),)),
        summarize_topology(topology, {"ns.ready"}),
        layers,
        (
            DlqCount("indexer", "ns.dlq.indexer", 0),
            DlqCount("thumbnailer", "ns.dlq.thumbnailer", 3),
        ),
        canaries,
        1_700_000_001.0,
        1.0,
    )


def _text(renderable: RenderableType) -> str:
    out = io.StringIO()
    Console(file=out, width=220, color_system=None).print(renderable)
    return out.getvalue()


def test_workers_include_members_without_partitions() -> None:
    workers = workers_of(_report(0, 0, 1).groups[0])
    assert [(w.client_id, w.partitions) for w in workers] == [
        ("worker-a", (("ns.sub.thumbnailer", 0),)),
        ("worker-b", (("ns.sub.thumbnailer", 1),)),
        ("worker-c", ()),
    ]


def test_layers_in_pipeline_order_with_throughput(tmp_path: Path) -> None:
    layers = _status(tmp_path).layers
    assert layers is not None
    assert [x.layer for x in layers] == ["frontend", "scheduler", "flow", "delivery", "execution"]
    delivery = layers[3]
    assert (delivery.group, delivery.state, len(delivery.workers)) == ("ns.delivery", "Stable", 3)
    assert (delivery.flow.lag, delivery.flow.rate_in, delivery.flow.rate_out) == (80, 10.0, 30.0)
    assert delivery.flow.trend == "draining"
    (topic,) = delivery.topics
    assert (topic.topic, topic.owner) == ("ns.sub.thumbnailer", "thumbnailer")
    scheduler = layers[1]
    assert scheduler.workers == ()
    assert scheduler.error is not None
    assert "does not exist" in scheduler.error
    assert layers[0].error == "not collected"


def test_canary_metrics_parsing_and_state() -> None:
    text = (
        "# HELP msm_canary_percent Share of tasks given to the canary\n"
        "# TYPE msm_canary_percent gauge\n"
        'msm_canary_percent{subscriber="a"} 0.0\n'
        'msm_canary_percent{subscriber="b"} 10.0\n'
        "# TYPE msm_canary_rollbacks counter\n"
        'msm_canary_rollbacks_total{subscriber="a"} 1.0\n'
        'msm_canary_rollbacks_created{subscriber="a"} 1.7e9\n'
        "# TYPE other gauge\n"
        "other 1.0\n"
    )
    assert parse_canary_metrics(text) == {"a": (0.0, 1.0), "b": (10.0, None)}
    base = CanaryStatus("a", "m:f", 10.0, 0.05)
    assert base.state == "configured"
    live = CanaryReading("u1", 10.0, 0.0)
    rolled = CanaryReading("u2", 0.0, 1.0)
    failed = CanaryReading("u3", None, None, "refused")
    assert CanaryStatus("a", "m:f", 10.0, 0.05, (live,)).state == "active"
    assert CanaryStatus("a", "m:f", 10.0, 0.05, (live, rolled)).state == "rolled_back"
    assert CanaryStatus("a", "m:f", 10.0, 0.05, (failed,)).state == "unknown"


def test_json_document(tmp_path: Path) -> None:
    doc = status_as_dict(_status(tmp_path))
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {
        "version",
        "collected_at",
        "broker",
        "topology",
        "sample_s",
        "layers",
        "dlq",
        "canaries",
    }
    assert doc["broker"] == {
        "bootstrap": "k:9092",
        "reachable": True,
        "error": None,
        "cluster_id": "cluster-1",
        "controller_id": 1,
        "brokers": [{"id": 1, "host": "k", "port": 9092}],
    }
    topology = doc["topology"]
    assert isinstance(topology, dict)
    assert topology["namespace"] == "ns"
    assert topology["events"] == [
        {"name": "other.happened", "partitions": 6},
        {"name": "thing.created", "partitions": 2},
    ]
    assert topology["subscribers"] == [
        {
            "name": "indexer",
            "kind": "endpoint",
            "handler": None,
            "events": ["thing.created", "other.happened"],
        },
        {
            "name": "thumbnailer",
            "kind": "handler",
            "handler": "examples.handlers:cleanup",
            "events": ["thing.created"],
        },
    ]
    missing = topology["missing_topics"]
    assert isinstance(missing, list)
    assert "ns.ready" not in missing
    assert "ns.accepted" in missing
    layers = doc["layers"]
    assert isinstance(layers, list)
    delivery = layers[3]
    assert isinstance(delivery, dict)
    assert {k: delivery[k] for k in ("layer", "group", "lag", "rate_in", "rate_out", "trend")} == {
        "layer": "delivery",
        "group": "ns.delivery",
        "lag": 80,
        "rate_in": 10.0,
        "rate_out": 30.0,
        "trend": "draining",
    }
    assert delivery["eta_s"] == 4.0
    workers = delivery["workers"]
    assert isinstance(workers, list)
    assert workers[0] == {
        "member_id": "m-a",
        "client_id": "worker-a",
        "host": "/10.0.0.1",
        "partitions": [{"topic": "ns.sub.thumbnailer", "partition": 0}],
    }
    assert doc["dlq"] == [
        {"subscriber": "indexer", "topic": "ns.dlq.indexer", "count": 0, "error": None},
        {"subscriber": "thumbnailer", "topic": "ns.dlq.thumbnailer", "count": 3, "error": None},
    ]
    assert doc["canaries"] == [
        {
            "subscriber": "thumbnailer",
            "handler": "examples.handlers:cleanup_v2",
            "percent": 20.0,
            "error_rate_threshold": 0.05,
            "state": "rolled_back",
            "readings": [
                {"url": "http://w1/metrics", "percent": 0.0, "rollbacks": 1.0, "error": None},
                {
                    "url": "http://w2/metrics",
                    "percent": None,
                    "rollbacks": None,
                    "error": "refused",
                },
            ],
        }
    ]


def test_screen(tmp_path: Path) -> None:
    text = _text(render_status(_status(tmp_path)))
    assert "broker k:9092: reachable, cluster cluster-1, 1 broker, controller 1" in text
    assert "namespace ns" in text
    assert "missing" in text
    delivery = next(line for line in text.splitlines() if line.startswith("│ delivery"))
    assert "ns.delivery" in delivery
    assert "Stable" in delivery
    assert "4s" in delivery
    assert "no worker runs this layer" in text
    assert "worker-c" in text  # idle members are workers too
    assert "ns.dlq.thumbnailer" in text
    assert "rolled_back" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_broker_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    path = write_topology(tmp_path, minimal())
    bootstrap = f"127.0.0.1:{_free_port()}"
    args = ["--topology", str(path), "status", "--bootstrap-servers", bootstrap]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert f"Kafka at {bootstrap} is unreachable" in result.stderr
    assert "UNREACHABLE" in result.stdout

    as_json = CliRunner().invoke(cli, [*args, "--json"])
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["broker"]["reachable"] is False
    assert doc["broker"]["error"]
    assert (doc["layers"], doc["dlq"]) == (None, None)
    assert doc["topology"]["namespace"] == "msm-test"
    assert doc["topology"]["missing_topics"] is None
