"""The worker's status page: numbers from the metrics registry, rates between samples, routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pipeline.metrics import make_metrics
from pipeline.topology import Topology, load_topology
from pipeline.worker import status_page as sp
from tests.fixtures.topologies import write_topology
from tests.unit.test_dashboard import exposed_names

DOC: dict[str, Any] = {
    "namespace": "st",
    "events": {"thing.created": {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"}},
    "subscribers": {
        "audit": {"events": ["thing.created"], "handler": "tests.integration.e2e_handlers:record"},
        "hook": {"events": ["thing.created"], "endpoint": "http://127.0.0.1:9/hook"},
    },
}


def _topology(tmp_path: Path) -> Topology:
    return load_topology(write_topology(tmp_path, DOC))


def test_every_series_read_exists_in_the_metrics_registry() -> None:
    missing = set(sp.SERIES) - exposed_names(make_metrics().registry)
    assert not missing, f"the status page reads series the registry does not have: {missing}"


def test_subscriber_numbers_and_rates_come_from_two_samples(tmp_path: Path) -> None:
    m = make_metrics()
    m.worker_layer.labels("delivery").set(1)
    m.worker_layer.labels("execution").set(1)
    m.events_in.labels("delivery", "thing.created", "audit").inc(10)
    m.events_out.labels("execution", "thing.created", "audit").inc(4)
    m.events_out.labels("delivery", "thing.created", "hook").inc(6)
    m.consumer_lag.labels("delivery", "st.sub.audit", "audit").set(3)
    m.consumer_lag.labels("execution", "st.exec.audit", "audit").set(5)
    m.delivery_retries.labels("audit").inc(2)
    m.delivery_dead_letters.labels("hook", "exhausted").inc()
    first = sp.read_registry(m.registry, at=100.0)
    m.events_out.labels("execution", "thing.created", "audit").inc(8)
    second = sp.read_registry(m.registry, at=102.0)

    doc = sp.status_document("st", sp.subscribers_of(_topology(tmp_path)), [first, second])

    subs = {s["name"]: s for s in doc["subscribers"]}
    audit, hook = subs["audit"], subs["hook"]
    assert (audit["kind"], hook["kind"]) == ("handler", "endpoint")
    assert audit["lag"] == 8  # sub.audit in delivery + exec.audit in execution
    assert hook["lag"] is None  # no lag series of its own on this worker
    assert audit["done"] == 12  # handler subscribers finish in execution
    assert hook["done"] == 6  # endpoint subscribers finish in delivery
    assert audit["throughput"] == 4.0  # 8 more in 2 s
    assert audit["throughput_series"] == [None, 4.0]
    assert audit["lag_series"] == [8, 8]
    assert (audit["in"], audit["retries"], hook["dead_letters"]) == (10, 2, 1)
    assert doc["times"] == [100.0, 102.0]
    assert [row["layer"] for row in doc["layers"]] == ["delivery", "execution"]
    execution = doc["layers"][1]
    assert (execution["out"], execution["out_rate"]) == (12, 4.0)


def test_a_counter_that_fell_is_a_restart_not_a_negative_rate() -> None:
    sub = sp.Subscriber("a", sp.HANDLER)
    key = (("layer", "execution"), ("subscriber", "a"))
    before = sp.Snapshot(1.0, {sp.EVENTS_OUT: {key: 50.0}})
    after = sp.Snapshot(3.0, {sp.EVENTS_OUT: {key: 4.0}})
    doc = sp.status_document("ns", [sub], [before, after])
    assert doc["subscribers"][0]["throughput"] == 0.0


def test_the_page_is_self_contained_package_data() -> None:
    html = sp.page_html()
    assert "<canvas" in html
    assert 'fetch("status.json"' in html  # relative: works behind a path prefix too
    # Nothing loaded from elsewhere: no src/href to another origin, no CDN.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "import " not in html.split("<script>", 1)[1]


async def test_routes_serve_the_page_and_the_document(tmp_path: Path) -> None:
    m = make_metrics()
    m.worker_layer.labels("execution").set(1)
    m.events_out.labels("execution", "thing.created", "audit").inc(3)
    page = sp.StatusPage(_topology(tmp_path), m.registry, interval_s=0.05)
    app = web.Application()
    app.add_routes(page.routes())
    page.start()
    try:
        async with TestClient(TestServer(app)) as client:
            html = await client.get("/status")
            assert html.status == 200
            assert html.content_type == "text/html"
            assert "MSM worker" in await html.text()
            response = await client.get("/status.json")
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            doc = await response.json()
    finally:
        await page.stop()
    assert doc["namespace"] == "st"
    assert {s["name"]: s["done"] for s in doc["subscribers"]} == {"audit": 3, "hook": 0}
    assert len(page.history) >= 1
    assert page._task is None
