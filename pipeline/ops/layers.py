"""Which MSM layer and owner a topic belongs to, so lag can be read as "who is behind".

Topics the topology names (via :class:`~pipeline.topology.topics.TopicNames`) are matched
exactly. Other topics under the namespace are matched by their naming pattern, so a subscriber
removed from the topology but still lagging is still attributed to it. Anything else is "other".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from pipeline.topology import Topology, format_duration
from pipeline.topology.topics import LAYERS as MSM_LAYERS
from pipeline.topology.topics import TopicNames

# The layer names of pipeline.topology.topics (as `msm topology show` prints them), plus one
# for topics outside MSM's naming scheme.
FRONTEND, SCHEDULER, FLOW, DELIVERY, EXECUTION = MSM_LAYERS
OTHER = "other"
LAYERS = (*MSM_LAYERS, OTHER)  # pipeline order, the order `msm lag` shows them in


@dataclass(frozen=True)
class TopicRole:
    layer: str  # one of LAYERS: the layer whose consumers this topic's lag holds back
    owner: str | None  # the event, delay tier or subscriber the topic serves, if any


Classifier = Callable[[str], TopicRole]

# Shared topics by their name below the namespace, and the layer that consumes them. Outcomes
# feed flow control first (capacity, task state); delivery reads them too.
_SHARED = {
    "rejected": FRONTEND,
    "accepted": SCHEDULER,
    "schedules": SCHEDULER,
    "cdc": SCHEDULER,
    "ready": FLOW,
    "outcomes": DELIVERY,
    "control": DELIVERY,  # read by every delivery (and execution) worker, without a group
    "tasks": FLOW,
}
# Topic-name patterns below the namespace, used for names the topology does not list. They
# mirror TopicNames; tests/unit/test_lag_layers.py checks that they agree.
_PREFIXES = (
    ("in.", FRONTEND),
    ("delay.", SCHEDULER),
    ("sub.", DELIVERY),
    ("dlq.", DELIVERY),
    ("exec.", EXECUTION),
    ("done.", EXECUTION),
)


def known_topics(
    namespace: str,
    events: Iterable[str] = (),
    subscribers: Iterable[str] = (),
    delay_tiers: Iterable[timedelta] = (),
) -> dict[str, TopicRole]:
    """Every topic the topology implies, with its layer and owner."""
    names = TopicNames(namespace)
    known = {
        names.rejected: TopicRole(FRONTEND, None),
        names.accepted: TopicRole(SCHEDULER, None),
        names.schedules: TopicRole(SCHEDULER, None),
        names.cdc: TopicRole(SCHEDULER, None),
        names.ready: TopicRole(FLOW, None),
        names.outcomes: TopicRole(DELIVERY, None),
        names.control: TopicRole(DELIVERY, None),
        names.tasks: TopicRole(FLOW, None),
    }
    for event in events:
        known[names.ingress(event)] = TopicRole(FRONTEND, event)
    for tier in delay_tiers:
        known[names.delay(tier)] = TopicRole(SCHEDULER, format_duration(tier))
    for sub in subscribers:
        known[names.sub(sub)] = TopicRole(DELIVERY, sub)
        known[names.dlq(sub)] = TopicRole(DELIVERY, sub)
        known[names.execution(sub)] = TopicRole(EXECUTION, sub)
        known[names.done(sub)] = TopicRole(EXECUTION, sub)
    return known


def classify_topic(
    topic: str, namespace: str, known: Mapping[str, TopicRole] | None = None
) -> TopicRole:
    """The role of ``topic``: exact match in ``known`` first, then the naming pattern."""
    if known is not None and topic in known:
        return known[topic]
    rest = topic.removeprefix(f"{namespace}.")
    if rest == topic:
        return TopicRole(OTHER, None)
    for prefix, layer in _PREFIXES:
        if rest.startswith(prefix) and len(rest) > len(prefix):
            return TopicRole(layer, rest[len(prefix) :])
    return TopicRole(_SHARED.get(rest, OTHER), None)


def classifier_for(topology: Topology) -> Classifier:
    """A classifier bound to one topology's namespace, events, subscribers and delay tiers."""
    known = known_topics(
        topology.namespace, topology.events, topology.subscribers, topology.delay_tiers
    )
    namespace = topology.namespace

    def classify(topic: str) -> TopicRole:
        return classify_topic(topic, namespace, known)

    return classify
