"""Topic names and the topic plan derived from a topology."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pipeline.topology import load_topology
from pipeline.topology.topics import (
    HEADROOM,
    LAYERS,
    TopicNames,
    TopicPlan,
    by_layer,
    plan_topics,
)
from tests.fixtures.topologies import REPO, minimal, write_topology

DAY_MS = 24 * 3600 * 1000


def test_topic_names() -> None:
    names = TopicNames("acme")
    assert names.ingress("file.uploaded") == "acme.in.file.uploaded"
    assert (names.accepted, names.rejected, names.ready, names.outcomes) == (
        "acme.accepted",
        "acme.rejected",
        "acme.ready",
        "acme.outcomes",
    )
    assert (names.tasks, names.schedules) == ("acme.tasks", "acme.schedules")
    assert names.delay(timedelta(seconds=30)) == "acme.delay.30s"
    assert names.delay(timedelta(days=1)) == "acme.delay.1d"
    assert names.delay(timedelta(minutes=2)) == "acme.delay.2m"
    assert names.sub("thumbnailer") == "acme.sub.thumbnailer"
    assert names.execution("thumbnailer") == "acme.exec.thumbnailer"
    assert names.dlq("thumbnailer") == "acme.dlq.thumbnailer"
    assert TopicNames().ingress("x") == "msm.in.x"


def test_tier_of_reads_delay_topic_names_back() -> None:
    names = TopicNames("acme")
    for tier in (timedelta(seconds=1), timedelta(minutes=10), timedelta(hours=6)):
        assert names.tier_of(names.delay(tier)) == tier
    assert names.tier_of("acme.delay.soon") is None
    assert names.tier_of("other.delay.1s") is None


def _plan(tmp_path: Path) -> dict[str, TopicPlan]:
    doc = minimal()
    doc["events"]["other.happened"]["partitions"] = 3
    doc["events"]["other.happened"]["retention"] = "30d"
    doc["events"]["other.happened"]["max_bytes"] = 4 * 2**20
    doc["subscribers"]["thumbnailer"]["concurrency"] = {"min": 1, "max": 8}
    doc["kafka"] = {"min_insync_replicas": 1, "replication_factor": 1}
    doc["delay_tiers"] = ["1s", "30s", "3d", "365d"]
    return {p.name: p for p in plan_topics(load_topology(write_topology(tmp_path, doc)))}


def test_plan_lists_every_topic_in_pipeline_order(tmp_path: Path) -> None:
    plans = list(_plan(tmp_path).values())
    assert [p.name for p in plans] == [
        "msm-test.in.other.happened",
        "msm-test.in.thing.created",
        "msm-test.rejected",
        "msm-test.accepted",
        "msm-test.delay.1s",
        "msm-test.delay.30s",
        "msm-test.delay.3d",
        "msm-test.delay.365d",
        "msm-test.schedules",
        "msm-test.ready",
        "msm-test.tasks",
        "msm-test.outcomes",
        "msm-test.control",
        "msm-test.sub.indexer",
        "msm-test.dlq.indexer",
        "msm-test.sub.thumbnailer",
        "msm-test.dlq.thumbnailer",
        "msm-test.exec.indexer",
        "msm-test.done.indexer",
        "msm-test.exec.thumbnailer",
        "msm-test.done.thumbnailer",
    ]
    assert [LAYERS.index(p.layer) for p in plans] == sorted(LAYERS.index(p.layer) for p in plans)
    assert list(by_layer(plans)) == list(LAYERS)


def test_partition_counts(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan["msm-test.in.thing.created"].partitions == 2
    assert plan["msm-test.in.other.happened"].partitions == 3
    for shared in ("accepted", "rejected", "ready", "outcomes", "tasks", "delay.1s"):
        assert plan[f"msm-test.{shared}"].partitions == 3  # the largest event's
    assert plan["msm-test.schedules"].partitions == 1
    # max(concurrency.max, partitions of the subscriber's events)
    for kind in ("sub", "exec", "dlq", "done"):
        assert plan[f"msm-test.{kind}.thumbnailer"].partitions == 8
        assert plan[f"msm-test.{kind}.indexer"].partitions == 4  # default concurrency.max 4


def test_configs(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    mib = 2**20
    ingress = plan["msm-test.in.other.happened"]
    assert ingress.config == {
        "cleanup.policy": "delete",
        "max.message.bytes": str(4 * mib + HEADROOM),
        "min.insync.replicas": "1",
        "retention.ms": str(30 * DAY_MS),
    }
    assert plan["msm-test.in.thing.created"].config["retention.ms"] == str(7 * DAY_MS)
    assert plan["msm-test.in.thing.created"].config["max.message.bytes"] == str(mib + HEADROOM)
    assert plan["msm-test.accepted"].config["max.message.bytes"] == str(4 * mib + HEADROOM)
    assert plan["msm-test.sub.thumbnailer"].config["max.message.bytes"] == str(mib + HEADROOM)
    assert plan["msm-test.rejected"].config["retention.ms"] == str(30 * DAY_MS)
    assert plan["msm-test.dlq.indexer"].config["retention.ms"] == str(30 * DAY_MS)
    # delay tiers keep at least 7 days, and twice the tier plus a day beyond that
    assert plan["msm-test.delay.1s"].config["retention.ms"] == str(7 * DAY_MS)
    assert plan["msm-test.delay.3d"].config["retention.ms"] == str(7 * DAY_MS)
    assert plan["msm-test.delay.365d"].config["retention.ms"] == str(731 * DAY_MS)
    assert plan["msm-test.schedules"].config == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "1",
    }
    # task history is kept, not compacted: `msm task show` prints every state change
    assert plan["msm-test.tasks"].config["cleanup.policy"] == "delete"
    # finished task ids are compacted and kept for the dedup window (1h by default)
    assert plan["msm-test.done.indexer"].config == {
        "cleanup.policy": "compact,delete",
        "min.insync.replicas": "1",
        "retention.ms": str(3600 * 1000),
    }
    assert all(p.replication_factor == 1 for p in plan.values())


def test_owners(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan["msm-test.in.thing.created"].owner == "thing.created"
    assert plan["msm-test.delay.30s"].owner == "30s"
    assert plan["msm-test.exec.indexer"].owner == "indexer"
    assert plan["msm-test.accepted"].owner == ""


def test_example_plan_is_deterministic_and_valid_for_kafka() -> None:
    topology = load_topology(REPO / "topology.yaml")
    first, second = plan_topics(topology), plan_topics(topology)
    assert first == second
    names = [p.name for p in first]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,249}", n) for n in names)
    expected = 4 * len(topology.subscribers) + len(topology.events) + len(topology.delay_tiers) + 7
    assert len(first) == expected
