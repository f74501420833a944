"""Prometheus metrics shared by the layers, served at ``/metrics`` by every worker.

Names follow ``msm_<layer>_<what>_<unit>``; labels are the few an operator filters on
(event_type, reason, tier). The metric objects live in one registry made by :func:`registry`
per process, not at import time, so tests and embedders can make their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Lateness is "ready time minus deliver_at": 0 is perfect, anything negative would be a bug.
LATENESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


_GATE = ["layer", "subscriber"]


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    frontend_accepted: Counter
    frontend_rejected: Counter
    scheduler_forwarded: Counter
    scheduler_tiered: Counter
    scheduler_lateness: Histogram
    scheduler_early: Counter
    cron_ticks: Counter
    flow_tasks: Counter
    flow_filtered: Counter
    flow_filter_errors: Counter
    gate_in_flight: Gauge
    gate_limit: Gauge
    gate_parked: Gauge
    gate_held: Gauge
    gate_dispatched: Counter
    delivery_outcomes: Counter
    delivery_retries: Counter
    delivery_dead_letters: Counter
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
        frontend_accepted=Counter(
            "msm_frontend_accepted", "Events accepted at ingress", ["event_type"], registry=reg
        ),
        frontend_rejected=Counter(
            "msm_frontend_rejected", "Records rejected at ingress", ["reason"], registry=reg
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
