"""A small status page served by every worker: ``/status`` (HTML) and ``/status.json``.

The page (``static/status.html``: plain HTML and JavaScript, charts on ``<canvas>``, no build
step, nothing fetched from elsewhere) polls ``status.json`` every :data:`INTERVAL_S` seconds
and shows, per subscriber, its lag and throughput as numbers and as charts over the last
minutes, plus each layer's records in and out.

Everything comes from this worker's own metrics registry (``docs/metrics.md``), so the page
shows what *this* worker does and owns; Prometheus (``deploy/``) sums over workers. A sampler
reads the registry every :data:`INTERVAL_S` and keeps :data:`HISTORY` samples, so the charts
have a history as soon as the page opens; rates are differences between two samples.

* lag of a subscriber: ``msm_consumer_lag`` summed over its topics (``sub.<s>`` in delivery,
  ``exec.<s>`` in execution) on the partitions this worker owns; ``null`` while the worker
  owns none of them (it runs neither layer, or has not sampled its lag yet);
* throughput of a subscriber: tasks finished per second, ``msm_events_out_total`` of the
  execution layer for handler subscribers and of the delivery layer for endpoint subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from pipeline.topology import Topology

INTERVAL_S = 2.0
HISTORY = 150  # samples kept: five minutes at INTERVAL_S

# The series read, by their exposition names (docs/metrics.md); tests/unit/test_status_page.py
# checks that each exists in pipeline.metrics' registry.
EVENTS_IN = "msm_events_in_total"
EVENTS_OUT = "msm_events_out_total"
CONSUMER_LAG = "msm_consumer_lag"
WORKER_LAYER = "msm_worker_layer"
RETRIES = "msm_delivery_retries_total"
DEAD_LETTERS = "msm_delivery_dead_letters_total"
SERIES = (EVENTS_IN, EVENTS_OUT, CONSUMER_LAG, WORKER_LAYER, RETRIES, DEAD_LETTERS)

LAYERS = ("frontend", "scheduler", "flow", "delivery", "execution")
HANDLER, ENDPOINT = "handler", "endpoint"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Snapshot:
    """The series of :data:`SERIES` at one moment: name -> (sorted labels -> value)."""

    at: float  # time.time()
    values: Mapping[str, Mapping[Labels, float]] = field(default_factory=dict)

    def total(self, name: str, **where: str) -> float:
        """Sum of ``name``'s samples whose labels include ``where``."""
        return sum(
            value
            for labels, value in self.values.get(name, {}).items()
            if all(dict(labels).get(k) == v for k, v in where.items())
        )

    def present(self, name: str, **where: str) -> bool:
        wanted = where.items()
        return any(wanted <= dict(labels).items() for labels in self.values.get(name, {}))


def read_registry(registry: CollectorRegistry, at: float | None = None) -> Snapshot:
    """The samples of :data:`SERIES` now (``_created`` and other series are left out)."""
    wanted = set(SERIES)
    values: dict[str, dict[Labels, float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in wanted:
                labels = tuple(sorted(sample.labels.items()))
                values.setdefault(sample.name, {})[labels] = float(sample.value)
    return Snapshot(time.time() if at is None else at, values)


@dataclass(frozen=True)
class Subscriber:
    name: str
    kind: str  # HANDLER or ENDPOINT

    @property
    def done_layer(self) -> str:
        """The layer whose ``events_out`` counts this subscriber's finished tasks."""
        return "execution" if self.kind == HANDLER else "delivery"


def subscribers_of(topology: Topology) -> list[Subscriber]:
    return [
        Subscriber(name, HANDLER if spec.handler is not None else ENDPOINT)
        for name, spec in sorted(topology.subscribers.items())
    ]


def _lag(snap: Snapshot, subscriber: str) -> int | None:
    if not snap.present(CONSUMER_LAG, subscriber=subscriber):
        return None
    return int(snap.total(CONSUMER_LAG, subscriber=subscriber))


def _done(snap: Snapshot, sub: Subscriber) -> float:
    return snap.total(EVENTS_OUT, layer=sub.done_layer, subscriber=sub.name)


def _rate(before: float, after: float, seconds: float) -> float:
    # A counter only falls when the process restarted; that is not a negative rate.
    return max(0.0, after - before) / seconds if seconds > 0 else 0.0


def _layer_row(layer: str, prev: Snapshot | None, now: Snapshot) -> dict[str, Any]:
    row: dict[str, Any] = {"layer": layer}
    for key, name in (("in", EVENTS_IN), ("out", EVENTS_OUT)):
        total = now.total(name, layer=layer)
        row[key] = int(total)
        row[f"{key}_rate"] = (
            _rate(prev.total(name, layer=layer), total, now.at - prev.at) if prev else 0.0
        )
    return row


def status_document(
    namespace: str, subscribers: Iterable[Subscriber], history: Iterable[Snapshot]
) -> dict[str, Any]:
    """What ``/status.json`` answers: current numbers and the charts' series, oldest first."""
    snaps = list(history)
    now = snaps[-1] if snaps else Snapshot(time.time())
    prev = snaps[-2] if len(snaps) > 1 else None
    layers = [
        _layer_row(layer, prev, now) for layer in LAYERS if now.total(WORKER_LAYER, layer=layer) > 0
    ]
    rows = []
    for sub in subscribers:
        lag_series = [_lag(s, sub.name) for s in snaps]
        rate_series: list[float | None] = [None] if snaps else []
        rate_series += [
            _rate(_done(a, sub), _done(b, sub), b.at - a.at) for a, b in itertools.pairwise(snaps)
        ]
        rows.append(
            {
                "name": sub.name,
                "kind": sub.kind,
                "lag": _lag(now, sub.name),
                "throughput": rate_series[-1] or 0.0,
                "in": int(now.total(EVENTS_IN, layer="delivery", subscriber=sub.name)),
                "done": int(_done(now, sub)),
                "retries": int(now.total(RETRIES, subscriber=sub.name)),
                "dead_letters": int(now.total(DEAD_LETTERS, subscriber=sub.name)),
                "lag_series": lag_series,
                "throughput_series": rate_series,
            }
        )
    return {
        "namespace": namespace,
        "generated_at": now.at,
        "interval_s": INTERVAL_S,
        "times": [s.at for s in snaps],
        "layers": layers,
        "subscribers": rows,
    }


class StatusPage:
    """The routes, and the sampler behind them (start it with the server, stop it after)."""

    def __init__(
        self,
        topology: Topology,
        registry: CollectorRegistry,
        *,
        interval_s: float = INTERVAL_S,
        history: int = HISTORY,
    ) -> None:
        self.namespace = topology.namespace
        self.subscribers = subscribers_of(topology)
        self.registry = registry
        self.interval_s = interval_s
        self.history: deque[Snapshot] = deque(maxlen=history)
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/status", self._html), web.get("/status.json", self._json)]

    def sample(self) -> Snapshot:
        snap = read_registry(self.registry)
        self.history.append(snap)
        return snap

    def document(self) -> dict[str, Any]:
        if not self.history or time.time() - self.history[-1].at > self.interval_s:
            self.sample()  # the sampler is not running (or late): answer with numbers of now
        return status_document(self.namespace, self.subscribers, self.history)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="msm-status-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    async def _html(self, _request: web.Request) -> web.Response:
        return web.Response(text=page_html(), content_type="text/html", charset="utf-8")

    async def _json(self, _request: web.Request) -> web.Response:
        return web.json_response(self.document(), headers={"Cache-Control": "no-store"})


def page_html() -> str:
    """The page, shipped as package data (``pipeline/worker/static/status.html``)."""
    return resources.files("pipeline.worker").joinpath("static/status.html").read_text("utf-8")
