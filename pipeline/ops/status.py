"""`msm status`: one look at the broker, the topology, the workers of each layer and their work.

Everything comes from Kafka itself, so status needs no agent of its own and works on any
cluster a worker could use: broker health from a cluster description, workers from the members
of each layer's consumer group (``<ns>.<layer>``; Kafka's group heartbeat is the workers'
heartbeat), lag and throughput from two lag samples :data:`SAMPLE_S` apart (the
:class:`~pipeline.ops.rates.RateSampler` of ``msm lag --watch``), dead letters as ``end - start``
offsets of each ``<ns>.dlq.<s>`` (dead letters are never deleted, so that is their count while
retention keeps them).

Canary state lives only in each execution worker's memory (a rollback is per process, see
:mod:`pipeline.agents.execution_canary`) and in its ``/metrics``; nothing writes it to Kafka.
Status therefore lists the canaries the topology configures and, for worker metrics URLs given
with ``--metrics-url``, each worker's live ``msm_canary_percent`` and rollback count.

An unreachable broker is a result, not an exception: the status still carries what is known
without Kafka (the topology, the configured canaries) so ``--json`` can print it.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient

# Typed names that confluent_kafka.admin re-exports only implicitly (mypy --strict rejects those).
from confluent_kafka.admin._cluster import DescribeClusterResult
from confluent_kafka.admin._listoffsets import OffsetSpec
from prometheus_client.parser import text_string_to_metric_families

from pipeline.broker.probe import accepts_connections
from pipeline.errors import KafkaUnavailableError
from pipeline.ops.lag import GroupLag, LagReport, Member, collect_lag
from pipeline.ops.layers import Classifier, classifier_for
from pipeline.ops.rates import Flow, FlowRates, RateSampler, flow, sum_flows
from pipeline.topology import Topology, format_duration
from pipeline.topology.topics import LAYERS, TopicNames, plan_topics

SAMPLE_S = 1.0  # between the two lag samples that give throughput


@dataclass(frozen=True)
class BrokerNode:
    id: int
    host: str
    port: int


@dataclass(frozen=True)
class BrokerHealth:
    bootstrap: str
    reachable: bool
    error: str | None = None
    cluster_id: str | None = None
    controller_id: int | None = None
    brokers: tuple[BrokerNode, ...] = ()


@dataclass(frozen=True)
class SubscriberSummary:
    name: str
    kind: str  # "handler" or "endpoint"
    handler: str | None  # endpoints are not shown: their URLs may carry credentials
    events: tuple[str, ...]


@dataclass(frozen=True)
class TopologySummary:
    path: str
    namespace: str
    events: Mapping[str, int]  # event -> ingress partitions
    subscribers: tuple[SubscriberSummary, ...]
    schedules: tuple[str, ...]
    delay_tiers: tuple[str, ...]
    planned_topics: int
    missing_topics: tuple[str, ...] | None = None  # None: not known (broker unreachable)


@dataclass(frozen=True)
class Worker:
    """One member of a layer's consumer group and the partitions it holds."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TopicFlow:
    topic: str
    owner: str | None  # the event, delay tier or subscriber the topic serves
    flow: Flow


@dataclass(frozen=True)
class LayerStatus:
    """A layer's consumer group: its workers, lag and records in/out per second."""

    layer: str
    group: str
    state: str
    error: str | None
    workers: tuple[Worker, ...]
    flow: Flow
    uncommitted: int
    topics: tuple[TopicFlow, ...]


@dataclass(frozen=True)
class DlqCount:
    subscriber: str
    topic: str
    count: int | None  # None: the topic is missing or its offsets could not be read
    error: str | None = None


@dataclass(frozen=True)
class CanaryReading:
    """One worker's canary gauge, scraped from its /metrics."""

    url: str
    percent: float | None
    rollbacks: float | None
    error: str | None = None


@dataclass(frozen=True)
class CanaryStatus:
    subscriber: str
    handler: str
    percent: float  # configured
    error_rate_threshold: float
    readings: tuple[CanaryReading, ...] = ()

    @property
    def state(self) -> str:
        """configured (no reading), active, rolled_back (on some worker) or unknown."""
        known = [r for r in self.readings if r.percent is not None]
        if not self.readings:
            return "configured"
        if not known:
            return "unknown"
        if any(r.percent == 0 and self.percent > 0 for r in known):
            return "rolled_back"
        return "active"


@dataclass(frozen=True)
class Status:
    broker: BrokerHealth
    topology: TopologySummary
    layers: tuple[LayerStatus, ...] | None  # None: unknown (broker unreachable)
    dlq: tuple[DlqCount, ...] | None
    canaries: tuple[CanaryStatus, ...]
    collected_at: float
    sample_s: float | None  # seconds between the two lag samples; None: rates not measured


def layer_group(namespace: str, layer: str) -> str:
    """The consumer group of one layer's Faust app (see :mod:`pipeline.worker.app`)."""
    return f"{namespace}.{layer}"


def summarize_topology(topology: Topology, existing: set[str] | None = None) -> TopologySummary:
    planned = [p.name for p in plan_topics(topology)]
    subscribers = tuple(
        SubscriberSummary(
            s.name, "handler" if s.handler else "endpoint", s.handler, tuple(s.events)
        )
        for s in (topology.subscribers[n] for n in sorted(topology.subscribers))
    )
    return TopologySummary(
        path=str(topology.source_path),
        namespace=topology.namespace,
        events={n: topology.events[n].partitions for n in sorted(topology.events)},
        subscribers=subscribers,
        schedules=tuple(sorted(topology.schedules)),
        delay_tiers=tuple(format_duration(t) for t in topology.delay_tiers),
        planned_topics=len(planned),
        missing_topics=None if existing is None else tuple(n for n in planned if n not in existing),
    )


Scrape = Mapping[str, Mapping[str, tuple[float | None, float | None]] | str]


def configured_canaries(
    topology: Topology, scraped: Scrape | None = None
) -> tuple[CanaryStatus, ...]:
    """The topology's canaries, each with a reading per scraped metrics URL.

    ``scraped`` maps a URL to its canary metrics by subscriber, or to why it could not be read.
    A worker without the execution layer has no gauge for a subscriber: its reading says so.
    """
    found = []
    for name in sorted(topology.subscribers):
        canary = topology.subscribers[name].canary
        if canary is None:
            continue
        readings = []
        for url, metrics in (scraped or {}).items():
            if isinstance(metrics, str):
                readings.append(CanaryReading(url, None, None, metrics))
            elif name in metrics:
                readings.append(CanaryReading(url, *metrics[name]))
            else:
                readings.append(CanaryReading(url, None, None, "no canary metrics there"))
        found.append(
            CanaryStatus(
                name, canary.handler, canary.percent, canary.error_rate_threshold, tuple(readings)
            )
        )
    return tuple(found)


def layer_statuses(
    namespace: str, report: LagReport, rates: FlowRates, classify: Classifier
) -> tuple[LayerStatus, ...]:
    """One row per MSM layer from a lag report of the ``<ns>.<layer>`` groups."""
    groups = {g.group: g for g in report.groups}
    result = []
    for layer in LAYERS:
        name = layer_group(namespace, layer)
        group = groups.get(name) or GroupLag(name, "Unknown", 0, (), "not collected")
        topics = tuple(
            TopicFlow(
                t.topic,
                classify(t.topic).owner,
                rates.by_topic.get((name, t.topic)) or flow(t.lag, None, None),
            )
            for t in group.topics
        )
        result.append(
            LayerStatus(
                layer=layer,
                group=name,
                state=group.state,
                error=group.error,
                workers=workers_of(group),
                flow=rates.by_group.get(name) or sum_flows(t.flow for t in topics),
                uncommitted=group.uncommitted,
                topics=topics,
            )
        )
    return tuple(result)


def workers_of(group: GroupLag) -> tuple[Worker, ...]:
    """Every member with the partitions it holds (members without partitions too)."""
    held: dict[Member, list[tuple[str, int]]] = {m: [] for m in group.member_list}
    for t in group.topics:
        for p in t.partitions:
            if p.member is not None:
                held.setdefault(p.member, []).append((p.topic, p.partition))
    return tuple(
        Worker(m.member_id, m.client_id, m.host, tuple(sorted(parts)))
        for m, parts in sorted(held.items(), key=lambda e: (e[0].client_id, e[0].member_id))
    )


def check_broker(admin: AdminClient, bootstrap: str, timeout_s: float) -> BrokerHealth:
    """Reachable or not, with the cluster id, controller and brokers when it is.

    A bootstrap where nothing accepts TCP connections fails at once, not after the timeout.
    """
    servers = [hp for s in bootstrap.split(",") if (hp := _host_port(s)) is not None]
    if servers and not any(accepts_connections(h, p, min(timeout_s, 1.0)) for h, p in servers):
        return BrokerHealth(bootstrap, False, "nothing accepts connections there")
    try:
        future = admin.describe_cluster(request_timeout=timeout_s)
        cluster: DescribeClusterResult = future.result(timeout=timeout_s + 5)
    except TimeoutError:
        return BrokerHealth(bootstrap, False, f"no answer within {timeout_s:g}s")
    except KafkaException as exc:
        return BrokerHealth(bootstrap, False, exc.args[0].str())
    nodes = tuple(sorted((BrokerNode(n.id, n.host, n.port) for n in cluster.nodes), key=_id))
    controller = cluster.controller.id if cluster.controller is not None else None
    return BrokerHealth(bootstrap, True, None, cluster.cluster_id, controller, nodes)


def _id(node: BrokerNode) -> int:
    return node.id


def _host_port(server: str) -> tuple[str, int] | None:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "localhost", int(port)


def dlq_counts(
    admin: AdminClient,
    topology: Topology,
    partitions: Mapping[str, int],
    timeout_s: float,
) -> tuple[DlqCount, ...]:
    """Records in each subscriber's dead-letter topic (end - start offsets, all partitions).

    ``partitions`` maps existing topics to their partition count (from cluster metadata).
    """
    names = TopicNames(topology.namespace)
    topics = {s: names.dlq(s) for s in sorted(topology.subscribers)}
    wanted = [
        KafkaTopicPartition(t, p) for t in topics.values() for p in range(partitions.get(t, 0))
    ]
    starts = _offsets(admin, wanted, OffsetSpec.earliest(), timeout_s)  # type: ignore[no-untyped-call]
    ends = _offsets(admin, wanted, OffsetSpec.latest(), timeout_s)  # type: ignore[no-untyped-call]
    counts = []
    for subscriber, topic in topics.items():
        if topic not in partitions:
            counts.append(DlqCount(subscriber, topic, None, "topic does not exist"))
            continue
        total = 0
        for p in range(partitions[topic]):
            start, end = starts.get((topic, p)), ends.get((topic, p))
            if start is None or end is None:
                counts.append(DlqCount(subscriber, topic, None, "offsets could not be read"))
                break
            total += end - start
        else:
            counts.append(DlqCount(subscriber, topic, total))
    return tuple(counts)


def _offsets(
    admin: AdminClient, wanted: Sequence[KafkaTopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[tuple[str, int], int]:
    if not wanted:
        return {}
    futures = admin.list_offsets({tp: spec for tp in wanted}, request_timeout=timeout_s)
    found: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        try:
            found[(tp.topic, tp.partition)] = future.result(timeout=timeout_s + 5).offset
        except (KafkaException, TimeoutError):
            continue
    return found


def scrape_canaries(urls: Sequence[str], timeout_s: float = 2.0) -> Scrape:
    """Each worker's canary metrics by subscriber, from its /metrics, or why not."""
    scraped: dict[str, Mapping[str, tuple[float | None, float | None]] | str] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
                text = response.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            scraped[url] = str(exc)
            continue
        scraped[url] = parse_canary_metrics(text)
    return scraped


def parse_canary_metrics(text: str) -> dict[str, tuple[float | None, float | None]]:
    """subscriber -> (canary percent, rollbacks) from a Prometheus text exposition."""
    found: dict[str, tuple[float | None, float | None]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            subscriber = sample.labels.get("subscriber")
            if subscriber is None:
                continue
            percent, rollbacks = found.get(subscriber, (None, None))
            if sample.name == "msm_canary_percent":
                percent = sample.value
            elif sample.name == "msm_canary_rollbacks_total":
                rollbacks = sample.value
            else:
                continue
            found[subscriber] = (percent, rollbacks)
    return found


def collect_status(
    topology: Topology,
    admin: AdminClient,
    bootstrap: str,
    *,
    sample_s: float = SAMPLE_S,
    timeout_s: float = 5.0,
    metrics_urls: Sequence[str] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> Status:
    """Everything ``msm status`` shows; an unreachable broker leaves the Kafka parts None."""
    canaries = configured_canaries(topology, scrape_canaries(metrics_urls))
    broker = check_broker(admin, bootstrap, timeout_s)
    if not broker.reachable:
        return Status(broker, summarize_topology(topology), None, None, canaries, time.time(), None)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
        partitions = {name: len(t.partitions) for name, t in metadata.topics.items()}
        groups = [layer_group(topology.namespace, layer) for layer in LAYERS]
        sampler = RateSampler(half_life_s=0)
        rates = sampler.update(first := collect_lag(admin, groups, timeout_s))
        report = first
        if sample_s > 0:
            sleep(sample_s)
            report = collect_lag(admin, groups, timeout_s)
            rates = sampler.update(report)
        dlq = dlq_counts(admin, topology, partitions, timeout_s)
    except (KafkaException, KafkaUnavailableError) as exc:
        message = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        broker = BrokerHealth(bootstrap, False, message)
        return Status(broker, summarize_topology(topology), None, None, canaries, time.time(), None)
    layers = layer_statuses(topology.namespace, report, rates, classifier_for(topology))
    return Status(
        broker,
        summarize_topology(topology, set(partitions)),
        layers,
        dlq,
        canaries,
        report.collected_at,
        rates.seconds if sample_s > 0 else None,
    )
