"""The scheduler reports lateness of delayed events as a Prometheus histogram."""

from __future__ import annotations

from pipeline.agents.scheduler import _observe_lateness
from pipeline.metrics import process_metrics


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    value = process_metrics().registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_lateness_lands_in_its_bucket_and_early_is_counted() -> None:
    le_25ms = {"le": "0.025"}
    count = _sample("msm_scheduler_lateness_seconds_count")
    fast = _sample("msm_scheduler_lateness_seconds_bucket", le_25ms)
    early = _sample("msm_scheduler_early_total")
    _observe_lateness(7)
    _observe_lateness(300)
    assert _sample("msm_scheduler_lateness_seconds_count") == count + 2
    assert _sample("msm_scheduler_lateness_seconds_bucket", le_25ms) == fast + 1
    assert _sample("msm_scheduler_early_total") == early
    _observe_lateness(-1)
    assert _sample("msm_scheduler_early_total") == early + 1
