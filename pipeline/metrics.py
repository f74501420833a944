"""Prometheus metrics shared by the layers, served at ``/metrics`` by every worker.

Names follow ``msm_<layer>_<what>_<unit>``; labels are the few an operator filters on
(event_type, reason, tier). The metric objects live in one registry made by :func:`registry`
per process, not at import time, so tests and embedders can make their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# Lateness is "ready time minus deliver_at": 0 is perfect, anything negative would be a bug.
LATENESS_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


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
    )


@cache
def process_metrics() -> Metrics:
    """The worker process's metrics, made on first use."""
    return make_metrics()
