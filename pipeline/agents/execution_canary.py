"""Canary handlers: a share of tasks to a new handler version, rolled back when it errs more.

The choice is a hash of the task id, not a coin toss, so every attempt and redelivery of one task
runs the same version (a retry of a canary failure is judged by the canary again) and every
worker agrees without talking. Results are compared over the last :data:`WINDOW` of each version;
no verdict before :data:`MIN_SAMPLES` canary results, so two unlucky tasks cannot roll back a
healthy canary. A rollback sets the share to 0 for the rest of this process's life: each worker
decides alone, and a restarted worker tries the canary again (the topology still asks for it).
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Literal

from pipeline.topology.subscribers import CanarySpec

__all__ = ["MIN_SAMPLES", "WINDOW", "Canary", "Version", "bucket"]

Version = Literal["stable", "canary"]
WINDOW = 100  # results kept per version
MIN_SAMPLES = 20  # canary results needed before it can be rolled back
_BUCKETS = 10_000  # percent has two decimals of resolution


def bucket(task_id: str) -> int:
    """A stable number in [0, 10000) for a task id, the same in every process."""
    digest = hashlib.blake2b(task_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


class Canary:
    """Which version runs a task, and whether the canary has earned a rollback."""

    def __init__(
        self,
        percent: float,
        error_rate_threshold: float,
        *,
        window: int = WINDOW,
        min_samples: int = MIN_SAMPLES,
    ) -> None:
        self.percent = percent
        self.threshold = error_rate_threshold
        self.min_samples = min_samples
        self.rolled_back = False
        self._results: dict[Version, deque[bool]] = {
            "stable": deque(maxlen=window),
            "canary": deque(maxlen=window),
        }

    @classmethod
    def from_spec(cls, spec: CanarySpec) -> Canary:
        return cls(spec.percent, spec.error_rate_threshold)

    def choose(self, task_id: str) -> Version:
        return "canary" if bucket(task_id) < round(self.percent * _BUCKETS / 100) else "stable"

    def error_rate(self, version: Version) -> float:
        results = self._results[version]
        return results.count(False) / len(results) if results else 0.0

    def record(self, version: Version, ok: bool) -> bool:
        """Count one finished run; True exactly once: when this result rolls the canary back."""
        self._results[version].append(ok)
        if self.rolled_back or len(self._results["canary"]) < self.min_samples:
            return False
        if self.error_rate("canary") - self.error_rate("stable") > self.threshold:
            self.rolled_back = True
            self.percent = 0.0
            return True
        return False
