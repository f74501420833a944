"""docker-compose's Prometheus and Grafana, checked without Docker: files parse, paths and uids
agree, and every metric the dashboard queries exists in pipeline.metrics' registry (so the
dashboard cannot drift from the code). The queries themselves run against a real Prometheus in
tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from pipeline.metrics import make_metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "msm.json"
METRIC = re.compile(r"\bmsm_[a-z0-9_]+\b")


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry exposes, labelled ones too (before any child exists)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _services() -> dict[str, Any]:
    services = _yaml(ROOT / "docker-compose.yml")["services"]
    assert isinstance(services, dict)
    return services


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo path of a service's bind mounts (``./x:/y[:ro]``)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source
    return found


def test_compose_runs_prometheus_and_grafana_on_the_repo_files() -> None:
    services = _services()
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name in ("prometheus", "grafana"):
        for target, source in _mounts(services[name]).items():
            assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target}) is missing"
    assert "./deploy/prometheus/prometheus.yml" in _mounts(services["prometheus"]).values()


def test_prometheus_scrapes_the_worker_service_where_it_serves_metrics() -> None:
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for c in job["static_configs"] for t in c["targets"]]
    worker = _services()["worker"]
    assert "0.0.0.0" in worker["command"]  # noqa: S104 (reachable from the prometheus container)
    port = worker["ports"][0].split(":")[-1]
    assert targets == [f"worker:{port}"]


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    grafana = _services()["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in _services()["prometheus"]["ports"]
    (provider,) = _yaml(provisioning / "dashboards" / "msm.yml")["providers"]
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    uids = {
        t["datasource"]["uid"]
        for p in _dashboard()["panels"]
        for t in [p, *p["targets"]]
        if "datasource" in t
    }
    assert uids == {source["uid"]}


def test_dashboard_has_the_operator_panels_with_unique_ids() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("throughput per layer", "lag per subscriber", "latency", "lateness", "dead"):
        assert topic in titles, topic
    assert "retries" in titles
    assert len({p["id"] for p in panels}) == len(panels)
    assert dashboard["uid"] == "msm-overview"
    joined = " ".join(dashboard_queries())
    assert "histogram_quantile(0.5," in joined
    assert "histogram_quantile(0.99," in joined


def test_every_metric_the_dashboard_queries_exists_in_the_registry() -> None:
    exposed = exposed_names(make_metrics().registry)
    used = {name for expr in dashboard_queries() for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no msm_ metric"
    missing = sorted(used - exposed)
    assert not missing, f"dashboard uses metrics pipeline/metrics.py does not define: {missing}"
