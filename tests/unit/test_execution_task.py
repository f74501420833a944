"""Executor.process: dedup, run, and the records each result leaves (fake producer, no Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain
from pipeline.agents.execution_canary import MIN_SAMPLES, Canary, Version
from pipeline.agents.execution_dedup import DoneSet
from pipeline.agents.execution_handlers import Handler, Runner
from pipeline.agents.execution_task import RUNNING_RECORD_AFTER_S, Executor
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.gate.pump import Task
from pipeline.handler import DeadLetter, Retry, TaskMeta
from pipeline.metrics import Metrics, make_metrics
from pipeline.tasks import TaskRecord, parse_record
from pipeline.topology.subscribers import SubscriberSpec
from pipeline.topology.topics import TopicNames
from tests.fixtures.topologies import SCHEMAS

NAMES = TopicNames("ns")
THING = EventSchemas.load(SCHEMAS / "thing.v2.avsc")
NOW_MS = 1_750_000_000_000


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int | None


class Producer:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: h.HeaderList,
        partition: int | None,
    ) -> Awaitable[object]:
        self.sent.append(Sent(topic, key, value, dict(headers), partition))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    def records(self) -> list[TaskRecord]:
        return [parse_record(s.value) for s in self.on(NAMES.tasks)]

    def states(self) -> list[tuple[str, int]]:
        return [(r.state.value, r.attempt) for r in self.records()]


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[Mapping[str, object], TaskMeta]] = []


def spec(**extra: Any) -> SubscriberSpec:
    doc: dict[str, Any] = {
        "name": "sub",
        "events": ["thing.created"],
        "handler": "tests.unit.test_execution_task:unused",
        "retry": {"max_attempts": 3, "initial": "1s", "max": "4s"},
        "timeout": "1s",
        **extra,
    }
    return SubscriberSpec.model_validate(doc)


def task(event_id: str = "e1", partition: int = 2, **headers: bytes) -> Task:
    header_list = [
        (h.EVENT_ID, event_id.encode()),
        (h.EVENT_TYPE, b"thing.created"),
        (h.SCHEMA_FINGERPRINT, THING.current.fingerprint_hex.encode()),
        (h.KEY, b"k1"),
        (h.PUBLISHED_AT, str(NOW_MS - 250).encode()),
        (h.SUBSCRIBER, b"sub"),
        (h.ATTEMPT, b"1"),
        *((k.replace("_", "."), v) for k, v in headers.items()),
    ]
    value = wire.encode(THING.current, {"id": "a", "size": 7, "colour": "red"})
    return Task(
        tp=(NAMES.execution("sub"), partition),
        offset=10,
        key=b"k1",
        value=value,
        headers=dict(header_list),
        header_list=header_list,
        timestamp_ms=NOW_MS - 5,  # when delivery handed it over
    )


class Rig:
    def __init__(
        self,
        handlers: Mapping[Version, Handler],
        sub: SubscriberSpec | None = None,
        canary: Canary | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        self.producer = Producer()
        self.sleeps: list[float] = []
        self.loaded: list[int] = []
        self.done = DoneSet(window_ms=60_000)
        self.revocations = 0
        self.metrics: Metrics = make_metrics(CollectorRegistry())
        self.executor = Executor(
            sub or spec(),
            NAMES,
            {"thing.created": THING},
            handlers,
            Runner("sub", timeout_s),
            self.done,
            self._ensure,
            self.producer,
            self.metrics,
            canary=canary,
            generation=lambda _p: self.revocations,
            clock_ms=lambda: NOW_MS,
            sleep=self._sleep,
        )

    async def _ensure(self, partition: int) -> None:
        self.loaded.append(partition)

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def recording(calls: Calls, fail: BaseException | None = None, times: int = 10**9) -> Handler:
    async def handler(payload: Mapping[str, object], meta: TaskMeta) -> None:
        calls.seen.append((payload, meta))
        if fail is not None and len(calls.seen) <= times:
            raise fail

    return handler


async def test_success_writes_done_then_succeeded_and_passes_payload_and_meta() -> None:
    calls = Calls()
    rig = Rig({"stable": recording(calls)})
    await rig.executor.process(task())
    payload, meta = calls.seen[0]
    assert dict(payload) == {"id": "a", "size": 7, "colour": "red"}
    assert (meta.task_id, meta.attempt, meta.key, meta.event_type) == (
        "e1/sub",
        1,
        "k1",
        "thing.created",
    )
    assert rig.loaded == [2], "the partition's done records were loaded first"
    [done] = rig.producer.on(NAMES.done("sub"))
    assert (done.key, done.partition, json.loads(done.value)) == (b"e1/sub", 2, {"at": NOW_MS})
    assert rig.producer.states() == [("succeeded", 1)], "a quick run has no running record"
    [record] = rig.producer.records()
    assert (record.dispatched_at_ms, record.started_at_ms) == (task().timestamp_ms, NOW_MS)
    assert rig.producer.on(NAMES.outcomes) == []
    labels = {"subscriber": "sub", "version": "stable", "result": "succeeded"}
    assert rig.metric("msm_execution_results_total", **labels) == 1
    assert rig.metric("msm_end_to_end_seconds_sum", subscriber="sub") == pytest.approx(0.25)


async def test_a_done_task_is_skipped() -> None:
    calls = Calls()
    rig = Rig({"stable": recording(calls)})
    await rig.executor.process(task())
    await rig.executor.process(task())  # redelivered
    assert len(calls.seen) == 1
    assert rig.producer.states()[-1] == ("skipped", 1)
    assert rig.metric("msm_execution_skipped_total", subscriber="sub") == 1


async def test_two_copies_at_once_run_the_handler_once() -> None:
    calls = Calls()
    gate = asyncio.Event()

    async def slow(payload: Mapping[str, object], meta: TaskMeta) -> None:
        calls.seen.append((payload, meta))
        await gate.wait()

    rig = Rig({"stable": slow})
    first = asyncio.ensure_future(rig.executor.process(task()))
    second = asyncio.ensure_future(rig.executor.process(task()))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, second)
    assert len(calls.seen) == 1
    assert [s for s, _ in rig.producer.states()].count("skipped") == 1


async def test_failure_sends_an_outcome_with_the_error_chain() -> None:
    rig = Rig({"stable": recording(Calls(), ValueError("boom"))})
    await rig.executor.process(task())
    [out] = rig.producer.on(NAMES.outcomes)
    assert (out.key, out.partition) == (b"k1", None)
    assert out.value == task().value, "the task payload, untouched"
    assert out.headers[h.OUTCOME] == b"retriable"
    assert out.headers[h.HANDLER_VERSION] == b"stable"
    assert out.headers[h.EVENT_ID] == b"e1"
    chain = ErrorChain.from_json(out.headers[h.ERRORS])
    assert [(e.attempt, e.error_type, e.message) for e in chain.errors] == [
        (1, "builtins.ValueError", "boom")
    ]
    assert h.RETRY_AFTER_MS not in out.headers
    assert rig.producer.on(NAMES.done("sub")) == []
    assert rig.producer.states() == [("running", 1)]


async def test_the_chain_grows_from_the_task_header() -> None:
    rig = Rig({"stable": recording(Calls(), ValueError("again"))})
    await rig.executor.process(task())
    earlier = rig.producer.on(NAMES.outcomes)[0].headers[h.ERRORS]
    rig2 = Rig({"stable": recording(Calls(), ValueError("again"))})
    await rig2.executor.process(task(msm_errors=earlier, msm_attempt=b"2"))
    chain = ErrorChain.from_json(rig2.producer.on(NAMES.outcomes)[0].headers[h.ERRORS])
    assert [e.attempt for e in chain.errors] == [1, 2]
    assert chain.total == 2


async def test_retry_asks_for_a_least_delay() -> None:
    rig = Rig({"stable": recording(Calls(), Retry(delay=timedelta(seconds=42)))})
    await rig.executor.process(task())
    [out] = rig.producer.on(NAMES.outcomes)
    assert out.headers[h.OUTCOME] == b"retriable"
    assert out.headers[h.RETRY_AFTER_MS] == b"42000"


@pytest.mark.parametrize(
    ("error", "sub"),
    [
        (DeadLetter("never"), spec()),
        (KeyError("x"), spec(non_retriable=["builtins.KeyError"])),
    ],
)
async def test_non_retriable_errors(error: Exception, sub: SubscriberSpec) -> None:
    rig = Rig({"stable": recording(Calls(), error)}, sub)
    await rig.executor.process(task())
    assert rig.producer.on(NAMES.outcomes)[0].headers[h.OUTCOME] == b"non_retriable"


async def test_timeout_is_retriable_with_error_type_timeout() -> None:
    async def hangs(payload: Mapping[str, object], meta: TaskMeta) -> None:
        await asyncio.sleep(5)

    rig = Rig({"stable": hangs}, timeout_s=0.02)
    await rig.executor.process(task())
    [out] = rig.producer.on(NAMES.outcomes)
    assert out.headers[h.OUTCOME] == b"retriable"
    entry = ErrorChain.from_json(out.headers[h.ERRORS]).errors[0]
    assert entry.error_type == "timeout"
    labels = {"subscriber": "sub", "version": "stable", "result": "timeout"}
    assert rig.metric("msm_execution_results_total", **labels) == 1


async def test_an_undecodable_payload_is_non_retriable_without_running() -> None:
    calls = Calls()
    rig = Rig({"stable": recording(calls)})
    bad = task()
    bad = Task(bad.tp, bad.offset, bad.key, b"junk", bad.headers, bad.header_list, 0)
    await rig.executor.process(bad)
    assert calls.seen == []
    [out] = rig.producer.on(NAMES.outcomes)
    assert out.headers[h.OUTCOME] == b"non_retriable"
    assert h.HANDLER_VERSION not in out.headers


async def test_a_long_run_gets_a_running_record_while_it_runs() -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow(payload: Mapping[str, object], meta: TaskMeta) -> None:
        started.set()
        await finish.wait()

    rig = Rig({"stable": slow})
    run = asyncio.ensure_future(rig.executor.process(task()))
    await started.wait()
    assert rig.producer.states() == []
    await asyncio.sleep(RUNNING_RECORD_AFTER_S * 1.5)
    assert rig.producer.states() == [("running", 1)], "written while the handler runs"
    [running] = rig.producer.records()
    assert (running.at_ms, running.dispatched_at_ms) == (NOW_MS, task().timestamp_ms)
    finish.set()
    await run
    assert rig.producer.states() == [("running", 1), ("succeeded", 1)]
    assert rig.producer.records()[-1].started_at_ms is None, "its start has a record already"


async def test_ordered_retries_in_place_until_success() -> None:
    calls = Calls()
    rig = Rig({"stable": recording(calls, ValueError("flaky"), times=2)}, spec(ordered=True))
    await rig.executor.process(task())
    assert [m.attempt for _, m in calls.seen] == [1, 2, 3]
    assert len(rig.sleeps) == 2
    assert 0.5 <= rig.sleeps[0] <= 1
    assert 1 <= rig.sleeps[1] <= 2
    assert rig.producer.states() == [
        ("running", 1),
        ("retrying", 1),
        ("running", 2),
        ("retrying", 2),
        ("succeeded", 3),
    ], "failed attempts have running records; the quick last one is stamped on succeeded"
    assert rig.producer.records()[-1].started_at_ms == NOW_MS
    assert rig.producer.on(NAMES.outcomes) == []


async def test_ordered_gives_up_with_the_last_attempt() -> None:
    rig = Rig({"stable": recording(Calls(), ValueError("never"))}, spec(ordered=True))
    await rig.executor.process(task())
    [out] = rig.producer.on(NAMES.outcomes)
    assert out.headers[h.ATTEMPT] == b"3"
    assert out.headers[h.OUTCOME] == b"retriable"  # delivery finds the policy exhausted
    assert ErrorChain.from_json(out.headers[h.ERRORS]).total == 3


async def test_ordered_non_retriable_is_not_retried() -> None:
    rig = Rig({"stable": recording(Calls(), DeadLetter("no"))}, spec(ordered=True))
    await rig.executor.process(task())
    assert rig.sleeps == []
    assert rig.producer.on(NAMES.outcomes)[0].headers[h.ATTEMPT] == b"1"


async def test_ordered_stops_retrying_when_its_partition_is_revoked() -> None:
    calls = Calls()
    rig = Rig({"stable": recording(calls, ValueError("x"))}, spec(ordered=True))

    async def revoked_meanwhile(seconds: float) -> None:
        rig.revocations += 1

    rig.executor._sleep = revoked_meanwhile
    await rig.executor.process(task())
    assert len(calls.seen) == 1
    assert rig.producer.on(NAMES.outcomes) == []
    assert rig.producer.states() == [("running", 1), ("retrying", 1)]


async def test_ordered_honours_retry_delay() -> None:
    rig = Rig({"stable": recording(Calls(), Retry(3.5), times=1)}, spec(ordered=True))
    await rig.executor.process(task())
    assert rig.sleeps == [3.5]


async def test_canary_rollback_after_it_fails_more() -> None:
    stable, canary_calls = Calls(), Calls()
    canary = Canary(50, 0.05)
    rig = Rig(
        {"stable": recording(stable), "canary": recording(canary_calls, ValueError("v2 bug"))},
        spec(canary={"handler": "m:v2", "percent": 50, "error_rate_threshold": 0.05}),
        canary=canary,
    )
    for i in range(200):
        await rig.executor.process(task(event_id=f"e{i}"))
    assert len(canary_calls.seen) == MIN_SAMPLES, "no canary runs after the rollback"
    assert canary.percent == 0
    assert rig.metric("msm_canary_rollbacks_total", subscriber="sub") == 1
    assert rig.metric("msm_canary_percent", subscriber="sub") == 0
    versions = {o.headers[h.HANDLER_VERSION] for o in rig.producer.on(NAMES.outcomes)}
    assert versions == {b"canary"}
