"""Assemble a worker from the topology and the chosen layers, and run it until stopped."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any, cast

import faust

from pipeline.agents.base import LayerContext, Register
from pipeline.errors import ConfigError
from pipeline.http import HttpSettings
from pipeline.metrics import process_metrics
from pipeline.topology import Topology
from pipeline.worker.app import create_app
from pipeline.worker.consumer import Fetch
from pipeline.worker.http_service import HttpService
from pipeline.worker.lag_metrics import LagSampler
from pipeline.worker.logs import logging_config
from pipeline.worker.preflight import check_topics

log = logging.getLogger(__name__)

# Pipeline order; a layer listed here but not yet built is refused with a clear error.
LAYERS = ("frontend", "scheduler", "flow", "delivery", "execution")
# The built layers' modules, imported only when chosen: one unfinished layer cannot stop a
# worker that runs the others.
_MODULES = {
    "frontend": "pipeline.agents.frontend",
    "scheduler": "pipeline.agents.scheduler",
    "flow": "pipeline.agents.flow",
    "delivery": "pipeline.agents.delivery",
    "execution": "pipeline.agents.execution",
}


def available_layers() -> list[str]:
    return [layer for layer in LAYERS if layer in _MODULES]


def _register_function(layer: str) -> Register:
    module = importlib.import_module(_MODULES[layer])
    return cast(Register, module.register)


def build_apps(
    topology: Topology, layers: Sequence[str], *, fetch: Fetch | None = None, **overrides: Any
) -> list[Any]:
    """One Faust app per layer, agents registered; nothing connects until the worker starts."""
    if not layers:
        raise ConfigError(f"no layers chosen; expected some of: {', '.join(available_layers())}")
    unknown = [layer for layer in layers if layer not in _MODULES]
    if unknown:
        raise ConfigError(
            f"unknown or unbuilt layer(s): {', '.join(unknown)}; "
            f"expected some of: {', '.join(available_layers())}"
        )
    ctx = LayerContext(topology)
    apps = []
    for layer in sorted(set(layers), key=LAYERS.index):
        app = create_app(topology, layer, fetch=fetch, **overrides)
        _register_function(layer)(app, ctx)
        apps.append(app)
    return apps


def run_worker(
    topology: Topology,
    layers: Sequence[str],
    *,
    http: HttpSettings | None = None,
    fetch: Fetch | None = None,
    loglevel: str = "INFO",
    log_format: str = "text",
) -> None:
    """Run until SIGTERM/SIGINT; an agent crash exits the process non-zero (see fatal.py).

    Missing topics or an unreachable Kafka raise before anything starts.
    """
    apps = build_apps(topology, layers, fetch=fetch)
    check_topics(topology)
    by_layer = {app.conf.id.rsplit(".", 1)[-1]: app for app in apps}
    metrics = process_metrics()
    for layer in by_layer:
        metrics.worker_layer.labels(layer).set(1)
    services: list[Any] = [LagSampler(topology, by_layer, metrics)]
    if http is not None:  # every worker serves health and metrics; ingress only publishes
        services.append(HttpService(topology, http, apps=by_layer))
    log.info("worker: layers %s on %s", ", ".join(layers), topology.kafka.bootstrap_servers)
    run_apps(apps, services, loglevel=loglevel, log_format=log_format)


def run_apps(
    apps: Sequence[Any],
    services: Iterable[Any] = (),
    *,
    loglevel: str = "INFO",
    log_format: str = "text",
) -> None:
    """Run Faust apps (and mode services) in one worker until stopped; re-raises a crash."""
    worker = faust.Worker(
        *apps,
        *services,
        loglevel=loglevel,
        quiet=True,
        logging_config=logging_config(log_format, loglevel.upper()),
    )
    # Faust's terminal spinner, at WARNING and above, lowers the root logger to DEBUG so that
    # every debug record (several per event in aiokafka and Faust) is built just to spin it.
    worker.spinner = None
    worker.execute_from_commandline()
