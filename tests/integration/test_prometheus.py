"""A real Prometheus (Debian's ``prometheus``) scrapes a running five-layer worker; PromQL
through its HTTP API finds the series docs/metrics.md promises, with the right labels and
values, and every query of the Grafana dashboard (deploy/) runs without error.
"""

from __future__ import annotations

import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from tests.integration._observed_worker import (
    LAYERS,
    Observed,
    done_counts,
    free_port,
    get_json,
    observed_worker,
    require_tool,
    wait_for,
)
from tests.unit.test_dashboard import DEPLOY, dashboard_queries

pytestmark = pytest.mark.integration

SIZES = [10, 20, 500, 30, 900]  # "small" (size < 100) gets 3 of the 5
WAIT_S = 60.0


@dataclass(frozen=True)
class Prom:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (fails on any error Prometheus reports)."""
        q = urllib.parse.urlencode({"query": promql})
        answer = get_json(f"{self.url}/api/v1/query?{q}")
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        assert isinstance(result, list)
        return result

    def by(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def wait_by(
        self, promql: str, label: str, expected: dict[str, float], timeout_s: float = WAIT_S
    ) -> None:
        def read() -> dict[str, Any]:
            return self.by(promql, label)

        wait_for(read, lambda got: got == expected, f"{promql} == {expected}", timeout_s)


@pytest.fixture(scope="module")
def observed(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Observed]:
    require_tool("prometheus")
    with observed_worker(tmp_path_factory.mktemp("prom"), kafka_bootstrap, admin) as obs:
        yield obs


@pytest.fixture(scope="module")
def prom(observed: Observed) -> Iterator[Prom]:
    binary = require_tool("prometheus")
    port = free_port()
    config = observed.directory / "prometheus.yml"
    target = observed.url.removeprefix("http://")
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "msm", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    log_path = observed.directory / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={observed.directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: get_json(f"{url}/api/v1/status/buildinfo"), bool, "prometheus", 30)
        except AssertionError:
            raise AssertionError(log_path.read_text(errors="replace")[-4000:]) from None
        yield Prom(url)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [
            promtool,
            "check",
            "config",
            "--syntax-only",
            str(DEPLOY / "prometheus" / "prometheus.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_worker_and_promql_finds_its_series(
    observed: Observed, prom: Prom
) -> None:
    prom.wait_by('up{job="msm"}', "job", {"msm": 1.0})
    prom.wait_by("sum by (layer) (msm_worker_layer)", "layer", dict.fromkeys(LAYERS, 1.0))

    observed.publish(f"prom-{uuid.uuid4().hex[:8]}", SIZES)
    expected = {"audit": len(SIZES), "small": sum(s < 100 for s in SIZES)}
    observed.wait_status(lambda s: done_counts(s) == expected, f"handlers done {expected}")

    def counts(values: dict[str, int]) -> dict[str, float]:
        return {k: float(v) for k, v in values.items()}

    # Handlers finished: the execution layer's output per subscriber, as Prometheus sees it.
    prom.wait_by(
        'sum by (subscriber) (msm_events_out_total{layer="execution"})',
        "subscriber",
        counts(expected),
    )
    prom.wait_by(
        'sum by (subscriber) (msm_execution_results_total{result="succeeded"})',
        "subscriber",
        counts(expected),
    )
    prom.wait_by("sum by (subscriber) (msm_flow_tasks_total)", "subscriber", counts(expected))
    prom.wait_by(
        'sum by (event_type) (msm_events_in_total{layer="frontend"})',
        "event_type",
        {"thing.created": float(len(SIZES))},
    )
    # Caught up: every subscriber's lag series exists (sampled every 10 s) and is 0.
    prom.wait_by(
        'sum by (subscriber) (msm_consumer_lag{subscriber!=""})',
        "subscriber",
        {"audit": 0.0, "small": 0.0},
    )
    latency = prom.query("sum by (subscriber) (msm_end_to_end_seconds_count)")
    assert {r["metric"]["subscriber"]: float(r["value"][1]) for r in latency} == counts(expected)
    series = prom.query('msm_events_out_total{layer="execution", subscriber="audit"}')
    assert series, "no series"
    labels = series[0]["metric"]
    assert labels["job"] == "msm"
    assert labels["instance"] == observed.url.removeprefix("http://")
    assert labels["event_type"] == "thing.created"


def test_every_dashboard_query_runs_on_real_prometheus(observed: Observed, prom: Prom) -> None:
    prom.wait_by('up{job="msm"}', "job", {"msm": 1.0})
    for expr in dashboard_queries():
        prom.query(expr)  # a parse or evaluation error fails here
    lag_panel = 'sum by (subscriber) (msm_consumer_lag{subscriber!=""})'
    assert lag_panel in dashboard_queries()
    wait_for(
        lambda: prom.by(lag_panel, "subscriber"),
        lambda got: set(got) == {"audit", "small"},
        "the lag panel's series",
        WAIT_S,
    )
