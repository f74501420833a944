"""Prometheus metrics shared by the layers, served at ``/metrics`` by every worker.

Names follow ``msm_<layer>_<what>_<unit>``; labels are the few an operator filters on, spelled
alike everywhere (layer, event_type, subscriber, then reason, outcome, tier, ...), an empty
string where one does not apply. ``docs/metrics.md`` lists every series; keep it in step (a
dashboard and a Prometheus test are built from it). The metric objects live in one registry
made by :func:`make_metrics`, per process on first use (:func:`process_metrics`), not at import
time, so tests and embedders can make their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pipeline import headers as h
from pipeline.trace import task_context

# Lateness is "ready time minus deliver_at": 0 is perfect, anything negative would be a bug.
LATENESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


_GATE = ["layer", "subscriber"]
_FLOW = ["layer", "event_type", "subscriber"]


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events_in: Counter
    events_out: Counter
    consumer_lag: Gauge
    worker_layer: Gauge
    frontend_accepted: Counter
    frontend_rejected: Counter
    scheduler_forwarded: Counter
    scheduler_tiered: Counter
    scheduler_lateness: Histogram
    scheduler_early: Counter
    cron_ticks: Counter
    cdc_events: Counter
    cdc_snapshot_rows: Counter
    cdc_pace: Gauge
    cdc_paused: Gauge
    cdc_backlog: Gauge
    cdc_slot_lag_bytes: Gauge
    flow_tasks: Counter
    flow_filtered: Counter
    flow_filter_errors: Counter
    gate_in_flight: Gauge
    gate_limit: Gauge
    gate_parked: Gauge
    gate_held: Gauge
    gate_dispatched: Counter
    gate_rate_limit: Gauge
    gate_rate_limited: Gauge
    delivery_outcomes: Counter
    delivery_retries: Counter
    delivery_dead_letters: Counter
    dlq_size: Gauge
    delivery_target_healthy: Gauge
    delivery_http_seconds: Histogram
    execution_handler_seconds: Histogram
    execution_results: Counter
    execution_skipped: Counter
    execution_concurrency: Gauge
    canary_percent: Gauge
    canary_rollbacks: Counter
    end_to_end_seconds: Histogram

    def render(self) -> bytes:
        return generate_latest(self.registry)


def make_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    reg = registry or CollectorRegistry()
    return Metrics(
        registry=reg,
        events_in=Counter("msm_events_in", "Records a layer consumed", _FLOW, registry=reg),
        events_out=Counter(
            "msm_events_out", "Records a layer passed on (or finished)", _FLOW, registry=reg
        ),
        consumer_lag=Gauge(
            "msm_consumer_lag",
            "Records not yet committed on the partitions this worker owns",
            ["layer", "topic", "subscriber"],
            registry=reg,
        ),
        worker_layer=Gauge(
            "msm_worker_layer", "1 per layer this worker runs", ["layer"], registry=reg
        ),
        frontend_accepted=Counter(
            "msm_frontend_accepted", "Events accepted at ingress", ["event_type"], registry=reg
        ),
        frontend_rejected=Counter(
            "msm_frontend_rejected",
            "Records rejected at ingress",
            ["event_type", "reason"],
            registry=reg,
        ),
        scheduler_forwarded=Counter(
            "msm_scheduler_ready", "Events the scheduler forwarded to ready", registry=reg
        ),
        scheduler_tiered=Counter(
            "msm_scheduler_tiered", "Events written to a delay tier", ["tier"], registry=reg
        ),
        scheduler_lateness=Histogram(
            "msm_scheduler_lateness_seconds",
            "Delayed events: time forwarded to ready minus deliver_at",
            buckets=LATENESS_BUCKETS_S,
            registry=reg,
        ),
        scheduler_early=Counter(
            "msm_scheduler_early", "Delayed events forwarded before deliver_at", registry=reg
        ),
        cron_ticks=Counter("msm_cron_ticks", "Schedule ticks fired", ["schedule"], registry=reg),
        cdc_events=Counter(
            "msm_cdc_events", "Change events a CDC source published", ["source", "op"], registry=reg
        ),
        cdc_snapshot_rows=Counter(
            "msm_cdc_snapshot_rows", "Rows a CDC snapshot published", ["source"], registry=reg
        ),
        cdc_pace=Gauge(
            "msm_cdc_pace", "Share of rate_limit a CDC source is read at", ["source"], registry=reg
        ),
        cdc_paused=Gauge(
            "msm_cdc_paused",
            "1 while a CDC source is paused by its backlog",
            ["source"],
            registry=reg,
        ),
        cdc_backlog=Gauge(
            "msm_cdc_backlog", "Events ahead of a CDC source's events", ["source"], registry=reg
        ),
        cdc_slot_lag_bytes=Gauge(
            "msm_cdc_slot_lag_bytes",
            "WAL a CDC source's slot still holds",
            ["source"],
            registry=reg,
        ),
        flow_tasks=Counter(
            "msm_flow_tasks", "Tasks fanned out to a subscriber", ["subscriber"], registry=reg
        ),
        flow_filtered=Counter(
            "msm_flow_filtered",
            "Events a subscriber's filter left out",
            ["subscriber"],
            registry=reg,
        ),
        flow_filter_errors=Counter(
            "msm_flow_filter_errors",
            "Filter evaluations that failed (counted as no match)",
            ["subscriber"],
            registry=reg,
        ),
        gate_in_flight=Gauge(
            "msm_gate_in_flight", "Tasks dispatched, not finished", _GATE, registry=reg
        ),
        gate_limit=Gauge("msm_gate_limit", "This worker's in-flight limit", _GATE, registry=reg),
        gate_parked=Gauge(
            "msm_gate_parked", "Tasks read ahead, waiting for capacity", _GATE, registry=reg
        ),
        gate_held=Gauge(
            "msm_gate_held", "1 while deliveries are held (unhealthy target)", _GATE, registry=reg
        ),
        gate_dispatched=Counter(
            "msm_gate_dispatched", "Tasks let through the gate", _GATE, registry=reg
        ),
        gate_rate_limit=Gauge(
            "msm_gate_rate_limit",
            "This worker's share of the rate limit, per s",
            _GATE,
            registry=reg,
        ),
        gate_rate_limited=Gauge(
            "msm_gate_rate_limited",
            "1 while tasks wait for a rate-limit token",
            _GATE,
            registry=reg,
        ),
        delivery_outcomes=Counter(
            "msm_delivery_outcomes",
            "Finished attempts by outcome",
            ["subscriber", "outcome"],
            registry=reg,
        ),
        delivery_retries=Counter(
            "msm_delivery_retries", "Retries scheduled", ["subscriber"], registry=reg
        ),
        delivery_dead_letters=Counter(
            "msm_delivery_dead_letters",
            "Tasks sent to the dead-letter topic",
            ["subscriber", "reason"],
            registry=reg,
        ),
        dlq_size=Gauge(
            "msm_dlq_size", "Records in the dead-letter topic", ["subscriber"], registry=reg
        ),
        delivery_target_healthy=Gauge(
            "msm_delivery_target_healthy",
            "1 while the subscriber's target answers its health check",
            ["subscriber"],
            registry=reg,
        ),
        delivery_http_seconds=Histogram(
            "msm_delivery_http_seconds",
            "HTTP push duration",
            ["subscriber"],
            buckets=DURATION_BUCKETS_S,
            registry=reg,
        ),
        execution_handler_seconds=Histogram(
            "msm_execution_handler_seconds",
            "Handler run time",
            ["subscriber", "version"],
            buckets=DURATION_BUCKETS_S,
            registry=reg,
        ),
        execution_results=Counter(
            "msm_execution_results",
            "Handler runs by result (succeeded, failed, timeout)",
            ["subscriber", "version", "result"],
            registry=reg,
        ),
        execution_skipped=Counter(
            "msm_execution_skipped",
            "Redelivered tasks not run again (dedup)",
            ["subscriber"],
            registry=reg,
        ),
        execution_concurrency=Gauge(
            "msm_execution_concurrency", "Current handler concurrency", ["subscriber"], registry=reg
        ),
        canary_percent=Gauge(
            "msm_canary_percent", "Share of tasks given to the canary", ["subscriber"], registry=reg
        ),
        canary_rollbacks=Counter(
            "msm_canary_rollbacks", "Automatic canary rollbacks", ["subscriber"], registry=reg
        ),
        end_to_end_seconds=Histogram(
            "msm_end_to_end_seconds",
            "Published to handler (or endpoint) finished",
            ["subscriber"],
            buckets=DURATION_BUCKETS_S,
            registry=reg,
        ),
    )


@cache
def process_metrics() -> Metrics:
    """The worker process's metrics, made on first use."""
    return make_metrics()


class _HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, bytes]: ...


_T = TypeVar("_T", bound=_HasHeaders)


class LayerFlow:
    """``msm_events_in``/``_out`` for one layer, children cached: per-event cost is a dict
    lookup, not prometheus-client's label validation and lock."""

    def __init__(self, metrics: Metrics, layer: str) -> None:
        self._in, self._out = metrics.events_in, metrics.events_out
        self.layer = layer
        self._children: dict[tuple[bool, str, str], Counter] = {}

    def came_in(self, event_type: str, subscriber: str = "", n: int = 1) -> None:
        self._child(True, event_type, subscriber).inc(n)

    def went_out(self, event_type: str, subscriber: str = "", n: int = 1) -> None:
        self._child(False, event_type, subscriber).inc(n)

    def _child(self, incoming: bool, event_type: str, subscriber: str) -> Counter:
        key = (incoming, event_type, subscriber)
        child = self._children.get(key)
        if child is None:
            metric = self._in if incoming else self._out
            child = self._children[key] = metric.labels(self.layer, event_type, subscriber)
        return child

    def observed(
        self, process: Callable[[_T], Awaitable[None]], subscriber: str
    ) -> Callable[[_T], Awaitable[None]]:
        """``process`` counted in and out, and run in the task's log context (trace id,
        event id, subscriber on every line it logs). A raise is not counted out: it crashes
        the worker anyway."""

        async def run(task: _T) -> None:
            event_type = h.get_str(task.headers, h.EVENT_TYPE) or ""
            self.came_in(event_type, subscriber)
            with task_context(task.headers, subscriber):
                await process(task)
            self.went_out(event_type, subscriber)

        return run
