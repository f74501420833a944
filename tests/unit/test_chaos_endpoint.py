"""The slow-endpoint scenario's pure parts, and its endpoint's modes through aiohttp's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chaos.endpoint_server import (
    HEALTH,
    HEALTHY,
    HOOK,
    Answer,
    EndpointServer,
    answer,
    execution,
    slow,
    unavailable,
)
from chaos.ledger import LedgerTail
from chaos.scenarios.endpoint import Sample, memory_problem, rss_mb, summarize

HEADERS = {"X-MSM-Event-Id": "c-7", "X-MSM-Attempt": "2", "X-MSM-Subscriber": "remote"}
Client = TestClient[web.Request, web.Application]
BODY = json.dumps({"id": "c-7", "key": "k3", "seq": 4, "sent_ns": 1}).encode()


def test_answers_follow_the_mode() -> None:
    assert answer(HEALTHY, 5) == Answer(200)
    delays = [answer(slow(300, 1000), n).delay_s for n in range(200)]
    assert all(0.3 <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) > 0.5  # spread over the range, not one value
    down = [answer(unavailable(1, 2), n) for n in range(4)]
    assert [(a.status, a.retry_after_s) for a in down] == [(503, 1), (503, 2)] * 2


def test_an_accepted_push_is_a_ledger_execution() -> None:
    run = execution(HEADERS, BODY, 123)
    assert run is not None
    assert (run.subscriber, run.event_id, run.key, run.seq, run.attempt) == (
        "remote",
        "c-7",
        "k3",
        4,
        2,
    )
    assert run.started_ns == 123
    assert execution(HEADERS, b"not json", 1) is None
    assert execution({}, BODY, 1) is None


def test_rss_is_read_from_proc_status() -> None:
    assert rss_mb("Name:\tmsm\nVmRSS:\t  81920 kB\nThreads: 9\n") == 80.0
    assert rss_mb("Name:\tzombie\n") is None


def test_phases_are_summarized_in_order_with_their_peaks() -> None:
    samples = [
        Sample(1, "healthy", 80.0, 3),
        Sample(2, "healthy", 82.0, None),
        Sample(3, "slow", None, 300),
        Sample(4, "slow", 85.0, 200),
    ]
    [healthy, slow_] = summarize(samples)
    assert (healthy.phase, healthy.rss_max_mb, healthy.lag_max, healthy.seconds) == (
        "healthy",
        82.0,
        3,
        2,
    )
    assert (slow_.rss_max_mb, slow_.lag_max) == (85.0, 300)


@pytest.mark.parametrize(
    ("healthy", "peak", "failed"),
    [
        (80.0, 100.0, False),  # 20 MB: under the absolute limit
        (200.0, 240.0, False),  # 40 MB but 20 %: allocator growth of a big process
        (80.0, 120.0, True),  # 40 MB and 50 %
        (None, 90.0, True),  # not measured is not passed
    ],
)
def test_memory_fails_only_beyond_both_limits(
    healthy: float | None, peak: float, failed: bool
) -> None:
    assert (memory_problem(healthy, peak) is not None) == failed


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[EndpointServer, Client]]:
    server = EndpointServer(tmp_path)
    async with TestClient(TestServer(server.app())) as client:
        yield server, client


async def test_the_server_records_what_it_accepts_and_refuses_while_down(
    served: tuple[EndpointServer, Client],
    tmp_path: Path,
) -> None:
    server, client = served
    response = await client.post(HOOK, data=BODY, headers=HEADERS)
    assert response.status == 200
    assert (await client.get(HEALTH)).status == 200
    server.mode = unavailable(2)
    response = await client.post(HOOK, data=BODY, headers=HEADERS)
    assert (response.status, response.headers["Retry-After"]) == (503, "2")
    assert (await client.get(HEALTH)).status == 503
    [run] = LedgerTail(tmp_path).poll()  # the 503 was not an execution
    assert run.event_id == "c-7"
    stats = server.snapshot()
    assert (stats.requests, stats.count(200), stats.count(503, "unavailable")) == (2, 1, 1)
    assert stats.max_attempt == 2


async def test_a_slow_answer_waits_and_a_foreign_request_is_refused(
    served: tuple[EndpointServer, Client],
) -> None:
    server, client = served
    server.mode = slow(20, 20)
    response = await client.post(HOOK, data=BODY, headers=HEADERS)
    assert response.status == 200
    assert (await client.post(HOOK, data=b"{}", headers=HEADERS)).status == 400
    assert server.snapshot().count(200, "slow") == 1
