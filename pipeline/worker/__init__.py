"""The MSM worker: one Faust app per layer, all in one process, built from the topology."""

from pipeline.worker.runner import LAYERS, available_layers, build_apps, run_apps, run_worker

__all__ = ["LAYERS", "available_layers", "build_apps", "run_apps", "run_worker"]
