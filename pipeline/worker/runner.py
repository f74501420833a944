"""Assemble a worker from the topology and the chosen layers, and run it until stopped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faust

from pipeline.agents.base import LayerContext, Register
from pipeline.errors import ConfigError
from pipeline.http import HttpSettings
from pipeline.topology import Topology
from pipeline.worker.app import create_app
from pipeline.worker.http_service import HttpService

# Pipeline order; a layer listed here but not yet built is refused with a clear error.
LAYERS = ("frontend", "scheduler", "flow", "delivery", "execution")


def _registry() -> dict[str, Register]:
    from pipeline.agents import frontend, scheduler

    return {"frontend": frontend.register, "scheduler": scheduler.register}


def available_layers() -> list[str]:
    built = _registry()
    return [layer for layer in LAYERS if layer in built]


def build_apps(topology: Topology, layers: Sequence[str], **overrides: Any) -> list[Any]:
    """One Faust app per layer, agents registered; nothing connects until the worker starts."""
    registry = _registry()
    unknown = [layer for layer in layers if layer not in registry]
    if unknown:
        raise ConfigError(
            f"unknown or unbuilt layer(s): {', '.join(unknown)}; "
            f"expected some of: {', '.join(available_layers())}"
        )
    ctx = LayerContext(topology)
    apps = []
    for layer in sorted(set(layers), key=LAYERS.index):
        app = create_app(topology, layer, **overrides)
        registry[layer](app, ctx)
        apps.append(app)
    return apps


def run_worker(
    topology: Topology,
    layers: Sequence[str],
    *,
    http: HttpSettings | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run until SIGTERM/SIGINT; an agent crash exits the process non-zero (see fatal.py)."""
    apps = build_apps(topology, layers)
    services: list[Any] = []
    if http is not None and "frontend" in layers:
        services.append(HttpService(topology, http))
    logging.getLogger(__name__).info(
        "worker: layers %s on %s", ", ".join(layers), topology.kafka.bootstrap_servers
    )
    worker = faust.Worker(*apps, *services, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
