"""A worker running every layer serves /healthz, /readyz and /metrics on its own HTTP port,
and one event's traceparent, given at publish, reaches the handler and the JSON log lines.

The worker is started with ``--http-port 0`` (a free port, read back from its log, as several
workers on one machine would) and ``--log-format json``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline.client import Publisher
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.worker_support import FAST_SESSIONS, MSM, REPO, applied_topology

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
DOCUMENT: dict[str, Any] = {
    "delay_tiers": ["1s"],
    "events": {
        "thing.created": {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"},
    },
    "subscribers": {
        "traced": {
            "events": ["thing.created"],
            "handler": "tests.integration._trace_handlers:traced",
        },
    },
}
_URL = re.compile(r"on (http://[^ \"]+)")


@dataclass
class Running:
    topology: Topology
    url: str
    log_path: Path
    ledger: Path
    proc: subprocess.Popen[bytes]

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line of the worker's output (Faust's own lines included)."""
        found = []
        for line in self.log_path.read_text("utf-8", "replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http://127.0.0.1
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait(what: str, check: Any, timeout_s: float, log_path: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            tail = log_path.read_text("utf-8", "replace")[-4000:]
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{tail}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("worker_http")
    ledger, log_path = directory / "ledger.jsonl", directory / "worker.log"
    with applied_topology(directory, DOCUMENT, kafka_bootstrap, admin) as topology:
        command = [str(MSM), "--topology", str(topology.source_path), "worker"]
        command += ["--http-port", "0", "--log-format", "json"]
        env = {**os.environ, **FAST_SESSIONS, "MSM_TEST_LEDGER": str(ledger)}
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        try:

            def url() -> str | None:
                match = _URL.search(
                    "\n".join(
                        line for line in log_path.read_text().splitlines() if "worker HTTP" in line
                    )
                )
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited:\n{log_path.read_text()[-4000:]}")
                return match.group(1) if match else None

            base = _wait("the HTTP port in the log", url, 60, log_path)
            yield Running(topology, base, log_path, ledger, proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def test_health_and_readiness(worker: Running) -> None:
    assert _get(worker.url + "/healthz") == (200, json.dumps({"status": "ok"}))
    _wait("/readyz 200", lambda: _get(worker.url + "/readyz")[0] == 200, 90, worker.log_path)


def test_traceparent_reaches_the_handler_logs_and_metrics(worker: Running) -> None:
    _wait("/readyz 200", lambda: _get(worker.url + "/readyz")[0] == 200, 90, worker.log_path)
    with Publisher(worker.topology) as publisher:
        event_id = publisher.publish(
            "thing.created", {"id": "t-1", "size": 1, "colour": "red"}, traceparent=TRACEPARENT
        )
        untraced = publisher.publish("thing.created", {"id": "t-2", "size": 1, "colour": "red"})

    def ran() -> dict[str, dict[str, Any]] | None:
        if not worker.ledger.exists():
            return None
        rows = [json.loads(x) for x in worker.ledger.read_text().splitlines()]
        by_event = {r["event"]: r for r in rows}
        return by_event if {event_id, untraced} <= set(by_event) else None

    rows = _wait("both handler runs", ran, 60, worker.log_path)
    assert rows[event_id]["traceparent"] == TRACEPARENT
    created = rows[untraced]["traceparent"]  # none given: the frontend started a trace
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", created)

    def handler_line() -> dict[str, Any] | None:
        for line in worker.log_lines():
            if line.get("logger") == "tests.trace_handler" and line.get("event_id") == event_id:
                return line
        return None

    line = _wait("the handler's JSON log line", handler_line, 10, worker.log_path)
    assert line["trace_id"] == TRACE_ID
    assert line["subscriber"] == "traced"
    assert line["level"] == "INFO"
    assert line["message"] == "trace handler ran for t-1"

    names = TopicNames(worker.topology.namespace)
    ev = 'event_type="thing.created"'
    expected = [
        f'msm_events_in_total{{{ev},layer="frontend",subscriber=""}} 2.0',
        f'msm_events_out_total{{{ev},layer="flow",subscriber="traced"}} 2.0',
        f'msm_events_in_total{{{ev},layer="delivery",subscriber="traced"}} 2.0',
        f'msm_events_out_total{{{ev},layer="execution",subscriber="traced"}} 2.0',
        'msm_execution_results_total{result="succeeded",subscriber="traced",version="stable"} 2.0',
        'msm_execution_handler_seconds_count{subscriber="traced",version="stable"} 2.0',
        'msm_end_to_end_seconds_count{subscriber="traced"} 2.0',
        'msm_gate_in_flight{layer="execution",subscriber="traced"} 0.0',
        'msm_worker_layer{layer="scheduler"} 1.0',
        # sampled every 10 s from the worker's own partitions
        f'msm_consumer_lag{{layer="execution",subscriber="traced",topic="{names.execution("traced")}"}} 0.0',  # noqa: E501
        'msm_dlq_size{subscriber="traced"} 0.0',
    ]

    def missing() -> list[str]:
        text = _get(worker.url + "/metrics")[1]
        return [series for series in expected if series not in text.splitlines()]

    _wait("every expected series", lambda: not missing(), 40, worker.log_path)
