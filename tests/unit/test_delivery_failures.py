"""The retry/dead-letter path and the endpoint delivery loop, driven by a fake producer and a
scripted endpoint: which records go where, with which headers, and which task states."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from pipeline import headers as h
from pipeline.agents.delivery_endpoint import (
    RETRY_AFTER,
    EndpointDelivery,
    handler_process,
    next_attempt_headers,
    read_chain,
    with_first_attempt,
)
from pipeline.agents.delivery_failures import (
    Failed,
    Failures,
    dead_letter_headers,
    retry_headers,
)
from pipeline.agents.delivery_http import PushResult, Session, result_for_status
from pipeline.agents.delivery_json import PayloadJson
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry, Outcome
from pipeline.avro import wire
from pipeline.avro.records import to_avro
from pipeline.avro.schemas import load_schema
from pipeline.gate.pump import Pump, Task
from pipeline.metrics import Metrics, make_metrics
from pipeline.tasks import TaskState, parse_record
from pipeline.topology import SubscriberSpec, load_topology
from pipeline.topology.topics import TopicNames

REPO = Path(__file__).resolve().parents[2]
NOW_MS = 1_741_064_767_000
NOW = datetime.fromtimestamp(NOW_MS / 1000, UTC)
NAMES = TopicNames("ns")
PAYLOAD = {
    "file_id": "f1",
    "owner_id": "u1",
    "path": "/a.png",
    "size": 10,
    "mime_type": "image/png",
    "uploaded_at": 1_735_787_045_678,
}
Sent = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


class Producer:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: h.HeaderList, _p: int | None
    ) -> asyncio.Future[object]:
        self.sent.append((topic, key, value, list(headers)))
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def to(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s[0] == topic]

    def states(self) -> list[tuple[TaskState, int, str]]:
        records = [parse_record(s[2]) for s in self.to(NAMES.tasks)]
        return [(r.state, r.attempt, r.detail) for r in records]


def _spec(**extra: Any) -> SubscriberSpec:
    doc = {
        "name": "s",
        "events": ["file.uploaded"],
        "endpoint": "http://localhost:1/hook",
        "retry": {"max_attempts": 3, "initial": "10ms", "max": "20ms"},
        **extra,
    }
    return SubscriberSpec.model_validate(doc)


def _failures(producer: Producer, metrics: Metrics | None = None) -> Failures:
    return Failures(
        NAMES,
        producer.send,
        metrics or make_metrics(CollectorRegistry()),
        clock_ms=lambda: NOW_MS,
        rng=random.Random(7),
    )


TASK_HEADERS = [
    (h.EVENT_ID, b"ev-1"),
    (h.EVENT_TYPE, b"file.uploaded"),
    (h.PUBLISHED_AT, str(NOW_MS - 5000).encode()),
    (h.SUBSCRIBER, b"s"),
    (h.ATTEMPT, b"1"),
    (h.TIERED_AT, b"123"),
    (h.DELIVER_AT, b"456"),
    (h.OUTCOME, b"retriable"),
    (h.RETRY_AFTER_MS, b"0"),
    (h.FIRST_ATTEMPT_AT, b"999"),
    ("x-custom", b"kept"),
]


def _failed(attempt: int = 1, n_errors: int = 1) -> Failed:
    chain = ErrorChain()
    for i in range(1, n_errors + 1):
        chain = chain.add(
            ErrorEntry(attempt=i, at=NOW, error_type="http", message="boom", status=500)
        )
    return Failed(b"key", b"payload", TASK_HEADERS, attempt, chain)


def test_retry_headers_carry_the_next_attempt_and_drop_the_last_ones() -> None:
    chain = _failed().chain
    out = retry_headers(
        TASK_HEADERS, attempt=2, deliver_at_ms=NOW_MS + 50, target="ns.sub.s", chain=chain
    )
    names = [k for k, _ in out]
    assert len(names) == len(set(names))
    values = dict(out)
    assert values[h.ATTEMPT] == b"2"
    assert values[h.DELIVER_AT] == str(NOW_MS + 50).encode()
    assert values[h.TARGET] == b"ns.sub.s"
    assert ErrorChain.from_json(values[h.ERRORS]) == chain
    assert not {h.TIERED_AT, h.OUTCOME, h.RETRY_AFTER_MS} & set(values)
    assert values["x-custom"] == b"kept"
    assert values[h.FIRST_ATTEMPT_AT] == b"999"


def test_dead_letter_headers_keep_the_task_headers_with_errors_reason_and_time() -> None:
    chain = _failed(3, 3).chain
    out = dict(dead_letter_headers(TASK_HEADERS, reason="exhausted", at_ms=NOW_MS, chain=chain))
    assert out[h.DLQ_REASON] == b"exhausted"
    assert out[h.DLQ_AT] == str(NOW_MS).encode()
    assert ErrorChain.from_json(out[h.ERRORS]).total == 3
    assert out[h.FIRST_ATTEMPT_AT] == b"999"
    assert out[h.EVENT_ID] == b"ev-1"
    assert not {h.OUTCOME, h.RETRY_AFTER_MS, h.TIERED_AT} & set(out)


async def test_a_retriable_failure_is_retried_through_accepted() -> None:
    producer = Producer()
    metrics = make_metrics(CollectorRegistry())
    sent = await _failures(producer, metrics).handle(_spec(), _failed(), Outcome.RETRIABLE)
    await asyncio.gather(*sent)
    [(_, key, value, headers)] = producer.to(NAMES.accepted)
    assert (key, value) == (b"key", b"payload")
    due = int(dict(headers)[h.DELIVER_AT])
    assert NOW_MS + 5 <= due <= NOW_MS + 10  # equal jitter: half to all of the 10 ms
    [(state, attempt, detail)] = producer.states()
    assert (state, attempt) == (TaskState.RETRYING, 1)
    assert detail.startswith("HTTP 500: boom; attempt 2 at 2025-03-04T")
    assert metrics.delivery_retries.labels("s")._value.get() == 1


async def test_retry_after_is_a_lower_bound_on_the_delay() -> None:
    producer = Producer()
    failures = _failures(producer)
    await failures.handle(_spec(), _failed(), Outcome.RETRIABLE, timedelta(seconds=2))
    [(_, _, _, headers)] = producer.to(NAMES.accepted)
    assert int(dict(headers)[h.DELIVER_AT]) == NOW_MS + 2000


@pytest.mark.parametrize(
    ("outcome", "attempt", "ordered", "reason"),
    [
        (Outcome.NON_RETRIABLE, 1, False, "non_retriable"),
        (Outcome.RETRIABLE, 3, False, "exhausted"),
        (Outcome.RETRIABLE, 1, True, "exhausted"),  # ordered: never through the tiers
    ],
)
async def test_dead_letters(outcome: Outcome, attempt: int, ordered: bool, reason: str) -> None:
    producer = Producer()
    metrics = make_metrics(CollectorRegistry())
    failed = _failed(attempt, attempt)
    await _failures(producer, metrics).handle(_spec(ordered=ordered), failed, outcome)
    assert producer.to(NAMES.accepted) == []
    [(_, key, value, headers)] = producer.to(NAMES.dlq("s"))
    assert (key, value) == (b"key", b"payload")
    assert dict(headers)[h.DLQ_REASON] == reason.encode()
    [(state, n, detail)] = producer.states()
    assert (state, n) == (TaskState.DEAD, attempt)
    assert detail.startswith(f"{reason} after attempt {attempt}: HTTP 500")
    assert metrics.delivery_dead_letters.labels("s", reason)._value.get() == 1


def test_attempt_headers() -> None:
    stamped = with_first_attempt([(h.EVENT_ID, b"e")], NOW_MS)
    assert dict(stamped)[h.FIRST_ATTEMPT_AT] == str(NOW_MS).encode()
    assert with_first_attempt(stamped, NOW_MS + 1) == stamped
    chain = _failed(1, 1).chain
    nxt = next_attempt_headers([*stamped, (h.ATTEMPT, b"1")], 2, chain)
    assert dict(nxt)[h.ATTEMPT] == b"2"
    assert [k for k, _ in nxt].count(h.ATTEMPT) == 1
    assert read_chain(nxt, "s") == chain
    assert read_chain([(h.ERRORS, b"garbage")], "s") == ErrorChain()


# -- the endpoint loop, with a scripted endpoint ------------------------------------------


class Script:
    def __init__(self, statuses: Sequence[int], retry_after: str | None = None) -> None:
        self.statuses = list(statuses)
        self.retry_after = retry_after
        self.calls: list[Mapping[str, str]] = []
        self.bodies: list[bytes] = []

    async def __call__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        attempt: int,
        now: Any,
    ) -> PushResult:
        self.calls.append(headers)
        self.bodies.append(body)
        status = self.statuses.pop(0)
        return result_for_status(
            status, "R", b"", self.retry_after, attempt=attempt, now=now(), seconds=0.01
        )


def _task(value: bytes | None = None) -> Task:
    schema = load_schema(REPO / "schemas/file_uploaded.v2.avsc")
    payload = wire.encode(schema, to_avro(schema, {**PAYLOAD, "sha256": None}))
    headers = [(k, v) for k, v in TASK_HEADERS if k not in (h.FIRST_ATTEMPT_AT, h.OUTCOME)]
    return Task(("ns.sub.s", 0), 5, b"key", value or payload, dict(headers), headers, 0)


async def _deliver(
    spec: SubscriberSpec,
    statuses: Sequence[int],
    task: Task | None = None,
    retry_after: str | None = None,
) -> Any:
    producer = Producer()
    script = Script(statuses, retry_after)
    session = Session()
    topology = load_topology(REPO / "topology.yaml")
    metrics = make_metrics(CollectorRegistry())
    delivery = EndpointDelivery(
        spec,
        _failures(producer, metrics),
        PayloadJson(topology),
        session,
        metrics,
        lambda: NOW_MS,
        pusher=script,
    )
    delivery.pump = Pump("delivery", "s", delivery.process, max_in_flight=8, partitions=1)
    try:
        await delivery.process(task or _task())
    finally:
        await session.close()
    return producer, script, delivery


async def test_success_is_dispatched_then_succeeded_with_the_payload_as_json() -> None:
    producer, script, delivery = await _deliver(_spec(), [200])
    assert [(s, n) for s, n, _ in producer.states()] == [
        (TaskState.DISPATCHED, 1),
        (TaskState.SUCCEEDED, 1),
    ]
    assert json.loads(script.bodies[0])["file_id"] == "f1"
    assert script.calls[0]["X-MSM-Task-Id"] == "ev-1/s"
    assert delivery.pump.adaptive == 8


async def test_unordered_failure_goes_back_through_accepted_and_halves_the_limit() -> None:
    producer, _script, delivery = await _deliver(_spec(), [503])
    assert [s for s, _, _ in producer.states()] == [TaskState.DISPATCHED, TaskState.RETRYING]
    [(_, _, _, headers)] = producer.to(NAMES.accepted)
    assert dict(headers)[h.ATTEMPT] == b"2"
    assert h.FIRST_ATTEMPT_AT in dict(headers)
    assert delivery.pump.adaptive == 4  # 503: trouble, the AIMD limit halves


@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_on_503_or_429_holds_the_whole_subscriber_until_then(
    status: int,
) -> None:
    producer, _script, delivery = await _deliver(_spec(), [status], retry_after="1")
    assert delivery.pump.held  # the other tasks wait in Kafka instead of burning attempts
    [(_, _, _, headers)] = producer.to(NAMES.accepted)
    assert dict(headers)[h.ATTEMPT] == b"2"  # the task that got the answer is retried
    delivery.pump.release(RETRY_AFTER)


async def test_a_retry_after_hold_lasts_at_most_the_longest_back_off() -> None:
    _producer, _script, delivery = await _deliver(_spec(), [503], retry_after="86400")
    assert delivery.pump.held
    await asyncio.sleep(0.05)  # retry.max is 20 ms
    assert not delivery.pump.held


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (500, "1"), (502, "1")])
async def test_no_hold_without_retry_after_or_for_other_statuses(
    status: int, retry_after: str | None
) -> None:
    _producer, _script, delivery = await _deliver(_spec(), [status], retry_after=retry_after)
    assert not delivery.pump.held


async def test_ordered_task_is_retried_in_place_until_it_succeeds() -> None:
    producer, script, _ = await _deliver(_spec(ordered=True), [500, 429, 200])
    assert [c["X-MSM-Attempt"] for c in script.calls] == ["1", "2", "3"]
    assert [(s, n) for s, n, _ in producer.states()] == [
        (TaskState.DISPATCHED, 1),
        (TaskState.RETRYING, 1),
        (TaskState.DISPATCHED, 2),
        (TaskState.RETRYING, 2),
        (TaskState.DISPATCHED, 3),
        (TaskState.SUCCEEDED, 3),
    ]
    assert producer.to(NAMES.accepted) == []
    assert producer.to(NAMES.dlq("s")) == []


async def test_ordered_task_is_dead_lettered_with_every_error_once_attempts_run_out() -> None:
    producer, _script, _ = await _deliver(_spec(ordered=True), [500, 502, 503])
    [(_, _, _, headers)] = producer.to(NAMES.dlq("s"))
    chain = ErrorChain.from_json(dict(headers)[h.ERRORS])
    assert [(e.attempt, e.status) for e in chain.errors] == [(1, 500), (2, 502), (3, 503)]
    assert dict(headers)[h.DLQ_REASON] == b"exhausted"
    assert producer.states()[-1][0] is TaskState.DEAD


async def test_ordered_non_retriable_failure_is_dead_lettered_at_once() -> None:
    producer, script, _ = await _deliver(_spec(ordered=True), [400])
    [(_, _, _, headers)] = producer.to(NAMES.dlq("s"))
    assert dict(headers)[h.DLQ_REASON] == b"non_retriable"
    assert len(script.calls) == 1


async def test_an_unreadable_payload_is_dead_lettered_without_a_push() -> None:
    producer, script, _ = await _deliver(_spec(), [], _task(b"not avro"))
    assert script.calls == []
    [(_, _, value, headers)] = producer.to(NAMES.dlq("s"))
    assert value == b"not avro"
    chain = ErrorChain.from_json(dict(headers)[h.ERRORS])
    assert chain.errors[0].error_type.endswith("PayloadError")


async def test_handler_tasks_go_to_the_execution_topic_unchanged_but_stamped() -> None:
    producer = Producer()
    process = handler_process(NAMES.execution("s"), producer.send, lambda: NOW_MS)
    task = _task()
    await process(task)
    [(_, key, value, headers)] = producer.to(NAMES.execution("s"))
    assert (key, value) == (task.key, task.value)
    assert headers == [*task.header_list, (h.FIRST_ATTEMPT_AT, str(NOW_MS).encode())]
    assert producer.states() == [], "execution stamps the dispatch time on its own records"
