"""Topic name -> (MSM layer, owner), for names the topology lists and for leftovers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.ops.layers import (
    DELIVERY,
    EXECUTION,
    FLOW,
    FRONTEND,
    LAYERS,
    OTHER,
    SCHEDULER,
    TopicRole,
    classifier_for,
    classify_topic,
    known_topics,
)
from pipeline.topology import format_duration, load_topology
from pipeline.topology.topics import TopicNames, plan_topics

EXAMPLE = Path(__file__).parents[2] / "topology.yaml"

TIERS = [timedelta(seconds=1), timedelta(seconds=30), timedelta(hours=6)]


@pytest.mark.parametrize("namespace", ["msm", "acme.prod"])
def test_every_topic_the_topology_implies_is_classified(namespace: str) -> None:
    names = TopicNames(namespace)
    known = known_topics(namespace, ["file.uploaded"], ["thumbnailer", "search-indexer"], TIERS)
    expected = {
        names.ingress("file.uploaded"): TopicRole(FRONTEND, "file.uploaded"),
        names.rejected: TopicRole(FRONTEND, None),
        names.accepted: TopicRole(SCHEDULER, None),
        names.ready: TopicRole(FLOW, None),
        names.outcomes: TopicRole(DELIVERY, None),
        names.control: TopicRole(DELIVERY, None),
        names.tasks: TopicRole(FLOW, None),
        names.schedules: TopicRole(SCHEDULER, None),
        names.cdc: TopicRole(SCHEDULER, None),
        names.sub("thumbnailer"): TopicRole(DELIVERY, "thumbnailer"),
        names.dlq("thumbnailer"): TopicRole(DELIVERY, "thumbnailer"),
        names.execution("thumbnailer"): TopicRole(EXECUTION, "thumbnailer"),
        names.done("thumbnailer"): TopicRole(EXECUTION, "thumbnailer"),
        names.sub("search-indexer"): TopicRole(DELIVERY, "search-indexer"),
        names.dlq("search-indexer"): TopicRole(DELIVERY, "search-indexer"),
        names.execution("search-indexer"): TopicRole(EXECUTION, "search-indexer"),
        names.done("search-indexer"): TopicRole(EXECUTION, "search-indexer"),
    }
    for tier in TIERS:
        expected[names.delay(tier)] = TopicRole(SCHEDULER, format_duration(tier))
    assert known == expected
    for topic, role in expected.items():
        assert classify_topic(topic, namespace, known) == role


@pytest.mark.parametrize("namespace", ["msm", "acme.prod"])
def test_patterns_agree_with_topic_names_without_a_topology(namespace: str) -> None:
    # A subscriber or event no longer in the topology keeps its layer and owner.
    names = TopicNames(namespace)
    cases = {
        names.ingress("user.deleted"): TopicRole(FRONTEND, "user.deleted"),
        names.sub("old-sub"): TopicRole(DELIVERY, "old-sub"),
        names.dlq("old-sub"): TopicRole(DELIVERY, "old-sub"),
        names.execution("old-sub"): TopicRole(EXECUTION, "old-sub"),
        names.delay(timedelta(minutes=2)): TopicRole(SCHEDULER, "2m"),
        names.accepted: TopicRole(SCHEDULER, None),
        names.rejected: TopicRole(FRONTEND, None),
        names.ready: TopicRole(FLOW, None),
        names.outcomes: TopicRole(DELIVERY, None),
        names.control: TopicRole(DELIVERY, None),
        names.tasks: TopicRole(FLOW, None),
        names.schedules: TopicRole(SCHEDULER, None),
    }
    for topic, role in cases.items():
        assert classify_topic(topic, namespace) == role, topic


@pytest.mark.parametrize(
    "topic",
    ["orders", "msmx.sub.a", "other.msm.sub.a", "msm.sub.", "msm.unknown", "__consumer_offsets"],
)
def test_topics_outside_the_naming_scheme_are_other(topic: str) -> None:
    assert classify_topic(topic, "msm") == TopicRole(OTHER, None)


def test_classifier_agrees_with_the_topic_plan() -> None:
    # The topology's own plan says which layer reads each topic; lag must group the same way.
    topology = load_topology(EXAMPLE)
    classify = classifier_for(topology)
    plans = plan_topics(topology)
    assert plans
    for plan in plans:
        assert classify(plan.name) == TopicRole(plan.layer, plan.owner or None), plan.name
    assert classify("orders") == TopicRole(OTHER, None)


def test_layers_are_in_pipeline_order() -> None:
    assert LAYERS == (FRONTEND, SCHEDULER, FLOW, DELIVERY, EXECUTION, OTHER)
