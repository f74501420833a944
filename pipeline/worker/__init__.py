"""The MSM worker: one Faust app per layer, all in one process, built from the topology."""

from pipeline.worker.runner import LAYERS, build_apps, run_worker

__all__ = ["LAYERS", "build_apps", "run_worker"]
