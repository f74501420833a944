"""Delivery on a real broker: `msm worker --layers scheduler,delivery` against an HTTP endpoint
in the test process (:mod:`tests.integration._http_target`), one subscriber per case.

Tasks are written to ``<ns>.sub.<s>`` the way flow control leaves them and checked where delivery
leaves them: the endpoint's requests, the task states on ``<ns>.tasks``, dead letters on
``<ns>.dlq.<s>``, handler tasks on ``<ns>.exec.<s>``. Retries really travel through
``<ns>.accepted`` and the scheduler's delay tiers (1 s, 2 s) back to the subscriber's topic.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.tasks import TaskRecord, TaskState, parse_record
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import minimal
from tests.integration._http_target import Answer, HttpTarget, Request
from tests.integration._worker_proc import Sent, produce
from tests.worker_support import Record, TopicReader, Worker, applied_topology

THING = "thing.created"
HANDLER = "examples.handlers:make_thumbnail"
TRACEPARENT = b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"
FAST_RETRY = {"max_attempts": 3, "backoff": "fixed", "initial": "1s", "max": "1s"}


def _endpoint(target: HttpTarget, name: str, **extra: Any) -> dict[str, Any]:
    return {"events": [THING], "endpoint": target.url(f"hook/{name}"), **extra}


def document(target: HttpTarget) -> dict[str, Any]:
    doc = minimal()
    doc["delay_tiers"] = ["1s", "2s"]
    doc["schedules"] = {}
    doc["subscribers"] = {
        "ok": _endpoint(target, "ok"),
        "bad": _endpoint(target, "bad", retry=FAST_RETRY),
        "flaky": _endpoint(target, "flaky", retry=FAST_RETRY),
        "throttled": _endpoint(target, "throttled", retry=FAST_RETRY),
        "slow": _endpoint(target, "slow", retry=FAST_RETRY, timeout="500ms"),
        "doomed": _endpoint(target, "doomed", retry=FAST_RETRY),
        "sick": _endpoint(target, "sick", health_check=target.url("health/sick")),
        "ordered": _endpoint(target, "ordered", ordered=True, retry=FAST_RETRY),
        "handled": {"events": [THING], "handler": HANDLER},
        "orphan": {"events": [THING], "handler": HANDLER},
    }
    return doc


class StandIn:
    """A member of the execution group (``<ns>.execution``) consuming some exec topics, as an
    execution worker would: delivery's heartbeat check sees it."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
        )
        self._consumer.subscribe(topics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._consumer.poll(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


@dataclass(frozen=True)
class Setup:
    topology: Topology
    target: HttpTarget
    worker: Worker

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)

    @property
    def bootstrap(self) -> str:
        return self.topology.kafka.bootstrap_servers

    def partitions(self, topic: str) -> int:
        return next(p.partitions for p in plan_topics(self.topology) if p.name == topic)

    def reader(self, topic: str) -> TopicReader:
        return TopicReader(self.bootstrap, topic, self.partitions(topic))

    def send(self, subscriber: str, key: str, size: int = 1, event_id: str = "") -> str:
        """A task for ``subscriber`` as flow control writes it; returns its event id."""
        schema = load_schema(self.topology.events[THING].schema_path)
        event_id = event_id or new_id()
        fields: dict[str, str | int] = {
            h.EVENT_ID: event_id,
            h.EVENT_TYPE: THING,
            h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
            h.KEY: key,
            h.PUBLISHED_AT: int(time.time() * 1000),
            h.SUBSCRIBER: subscriber,
            h.ATTEMPT: 1,
        }
        value = wire.encode(schema, {"id": key, "size": size, "colour": "red"})
        headers = [
            *h.encode(fields),
            ("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
        ]
        produce(self.bootstrap, self.names.sub(subscriber), [(key.encode(), value, headers)])
        return event_id

    def states(self, event_id: str, until: TaskState, timeout_s: float = 20) -> list[TaskRecord]:
        """The event's task records, once one in state ``until`` is among them."""
        with self.reader(self.names.tasks) as reader:

            def mine(records: list[Record]) -> list[TaskRecord]:
                return [parse_record(r.value) for r in records if r.key == event_id.encode()]

            reader.wait_for(
                lambda rs: any(t.state is until for t in mine(rs)),
                f"{event_id} {until}",
                timeout_s,
            )
            return mine(reader.records)

    def dead_letter(self, subscriber: str, event_id: str, timeout_s: float = 20) -> Record:
        with self.reader(self.names.dlq(subscriber)) as reader:

            def mine(records: list[Record]) -> list[Record]:
                return [r for r in records if r.header.get(h.EVENT_ID) == event_id.encode()]

            reader.wait_for(lambda rs: bool(mine(rs)), f"dead letter {event_id}", timeout_s)
            [record] = mine(reader.poll(0.5))
            return record


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("delivery")
    target = HttpTarget()
    target.health["sick"] = 503  # unhealthy from the start: the test heals it
    with (
        target.running(),
        applied_topology(directory, document(target), kafka_bootstrap, admin) as topology,
    ):
        names = TopicNames(topology.namespace)
        stand_in = StandIn(
            kafka_bootstrap, f"{topology.namespace}.execution", [names.execution("handled")]
        )
        worker = Worker(topology, ["scheduler", "delivery"], directory / "worker.log")
        try:
            with worker:
                worker.wait_ready(60)
                yield Setup(topology, target, worker)
                assert worker.stop() == 0, worker.tail()
        finally:
            stand_in.close()


def new_id() -> str:
    return f"ev-{uuid.uuid4().hex[:12]}"


def _states(records: list[TaskRecord]) -> list[tuple[TaskState, int]]:
    return [(r.state, r.attempt) for r in records]


def test_2xx_succeeds_with_the_payload_as_json_and_the_task_headers(setup: Setup) -> None:
    event_id = setup.send("ok", "k1", size=7)
    records = setup.states(event_id, TaskState.SUCCEEDED)
    assert _states(records) == [(TaskState.DISPATCHED, 1), (TaskState.SUCCEEDED, 1)]
    [request] = [r for r in setup.target.requests("ok") if r.event_id == event_id]
    assert request.body == {"id": "k1", "size": 7, "colour": "red"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-MSM-Task-Id"] == f"{event_id}/ok"
    assert request.headers["X-MSM-Event-Type"] == THING
    assert request.headers["X-MSM-Subscriber"] == "ok"
    assert request.attempt == 1
    assert request.headers["traceparent"].startswith("00-aaaa")


def test_400_is_dead_lettered_at_once_as_non_retriable(setup: Setup) -> None:
    setup.target.scripts["bad"] = lambda _r, _n: Answer(400)
    event_id = setup.send("bad", "k2")
    record = setup.dead_letter("bad", event_id)
    assert record.key == b"k2"
    assert record.header[h.DLQ_REASON] == b"non_retriable"
    assert int(record.header[h.DLQ_AT]) > 0
    assert h.FIRST_ATTEMPT_AT in record.header
    chain = ErrorChain.from_json(record.header[h.ERRORS])
    assert [(e.attempt, e.status) for e in chain.errors] == [(1, 400)]
    assert wire.fingerprint_of(record.value)  # the original payload
    assert _states(setup.states(event_id, TaskState.DEAD))[-1] == (TaskState.DEAD, 1)
    assert len([r for r in setup.target.requests("bad") if r.event_id == event_id]) == 1


def test_500_is_retried_through_the_delay_tiers_then_succeeds(setup: Setup) -> None:
    setup.target.scripts["flaky"] = lambda _r, n: Answer(500 if n == 0 else 200)
    with setup.reader(setup.names.accepted) as accepted:
        event_id = setup.send("flaky", "k3")
        records = setup.states(event_id, TaskState.SUCCEEDED)
        retries = [r for r in accepted.poll(0.5) if r.header.get(h.EVENT_ID) == event_id.encode()]
    assert _states(records) == [
        (TaskState.DISPATCHED, 1),
        (TaskState.RETRYING, 1),
        (TaskState.DISPATCHED, 2),
        (TaskState.SUCCEEDED, 2),
    ]
    assert "HTTP 500" in records[1].detail
    assert "attempt 2 at" in records[1].detail
    [retry] = retries
    assert retry.header[h.TARGET] == setup.names.sub("flaky").encode()
    assert retry.header[h.ATTEMPT] == b"2"
    first, second = [r for r in setup.target.requests("flaky") if r.event_id == event_id]
    assert (first.attempt, second.attempt) == (1, 2)
    assert second.at - first.at >= 0.9  # the fixed 1 s back-off


def test_429_retry_after_is_honoured(setup: Setup) -> None:
    setup.target.scripts["throttled"] = lambda _r, n: (
        Answer(429, {"Retry-After": "2"}) if n == 0 else Answer(200)
    )
    event_id = setup.send("throttled", "k4")
    setup.states(event_id, TaskState.SUCCEEDED)
    first, second = [r for r in setup.target.requests("throttled") if r.event_id == event_id]
    assert second.at - first.at >= 2.0  # not the policy's 1 s: the endpoint asked for 2


def test_a_timeout_is_retriable(setup: Setup) -> None:
    setup.target.scripts["slow"] = lambda _r, n: Answer(200, delay_s=1.5 if n == 0 else 0)
    event_id = setup.send("slow", "k5")
    records = setup.states(event_id, TaskState.SUCCEEDED)
    retrying = [r for r in records if r.state is TaskState.RETRYING]
    assert len(retrying) == 1
    assert "TimeoutError" in retrying[0].detail


def test_exhausted_retries_dead_letter_with_every_attempts_error(setup: Setup) -> None:
    setup.target.scripts["doomed"] = lambda _r, n: Answer(502 if n % 2 else 500)
    event_id = setup.send("doomed", "k6")
    record = setup.dead_letter("doomed", event_id, timeout_s=25)
    assert record.header[h.DLQ_REASON] == b"exhausted"
    chain = ErrorChain.from_json(record.header[h.ERRORS])
    assert [(e.attempt, e.status) for e in chain.errors] == [(1, 500), (2, 502), (3, 500)]
    assert not {h.TARGET, h.TIERED_AT} & set(record.header)
    states = _states(setup.states(event_id, TaskState.DEAD))
    assert states[-1] == (TaskState.DEAD, 3)
    assert states.count((TaskState.DISPATCHED, 3)) == 1


def test_an_unhealthy_endpoint_pauses_deliveries_until_it_heals(setup: Setup) -> None:
    health = setup.target.url("health/sick")
    setup.worker.wait_for_log(f"health check {health} fails", timeout_s=15)  # two in a row
    sent = [setup.send("sick", f"s{i}") for i in range(3)]
    time.sleep(3)
    assert setup.target.requests("sick") == []  # held, not failed
    with setup.reader(setup.names.tasks) as tasks:
        mine = [r for r in tasks.poll(0.5) if r.key in {e.encode() for e in sent}]
        assert mine == []  # nothing dispatched, nothing retried
    setup.target.health["sick"] = 200
    requests = setup.target.wait_for(
        "sick", lambda rs: {r.event_id for r in rs} >= set(sent), "deliveries after healing"
    )
    assert all(r.attempt == 1 for r in requests)
    assert "deliveries resumed" in setup.worker.log()


def test_ordered_endpoint_keeps_per_key_order_through_a_retry(setup: Setup) -> None:
    failing: list[str] = []

    def script(request: Request, n: int) -> Answer:
        return Answer(500 if request.event_id in failing and n == 0 else 200)

    setup.target.scripts["ordered"] = script
    sent = [new_id() for _ in range(5)]
    failing.append(sent[1])
    for i, event_id in enumerate(sent):  # one by one, in order, on one key
        setup.send("ordered", "same-key", size=i, event_id=event_id)
    ok = setup.target.wait_for(
        "ordered",
        lambda rs: len({r.event_id for r in rs if r.event_id in sent}) == 5 and len(rs) >= 6,
        "5 ordered deliveries",
        timeout_s=25,
    )
    mine = [r for r in ok if r.event_id in sent]
    assert [r.event_id for r in mine] == [sent[0], sent[1], sent[1], *sent[2:]]
    assert [r.attempt for r in mine] == [1, 1, 2, 1, 1, 1]
    assert mine[2].at - mine[1].at >= 0.9  # retried in place after the 1 s back-off
    with setup.reader(setup.names.accepted) as accepted:
        assert not [r for r in accepted.poll(1) if r.header.get(h.EVENT_ID) == sent[1].encode()]


def test_handler_tasks_are_dispatched_to_the_execution_topic(setup: Setup) -> None:
    event_id = setup.send("handled", "k7")
    with setup.reader(setup.names.execution("handled")) as reader:
        reader.wait_for(
            lambda rs: any(r.header.get(h.EVENT_ID) == event_id.encode() for r in rs),
            "the task on exec",
        )
        [task] = [r for r in reader.records if r.header.get(h.EVENT_ID) == event_id.encode()]
    assert task.key == b"k7"
    assert task.header[h.SUBSCRIBER] == b"handled"
    assert task.header[h.ATTEMPT] == b"1"
    assert h.FIRST_ATTEMPT_AT in task.header
    with setup.reader(setup.names.tasks) as tasks:  # execution stamps the dispatch instead
        assert [r for r in tasks.poll(1) if r.key == event_id.encode()] == []


def test_handler_tasks_wait_while_no_execution_worker_is_there(setup: Setup) -> None:
    exec_topic = setup.names.execution("orphan")
    setup.worker.wait_for_log(f"execution workers missing on {exec_topic}", timeout_s=15)
    event_id = setup.send("orphan", "k8")
    with setup.reader(exec_topic) as reader:
        assert reader.poll(3) == []  # held while the group has no member for it
        group = f"{setup.topology.namespace}.execution"
        stand_in = StandIn(setup.bootstrap, group, [exec_topic])
        try:
            reader.wait_for(
                lambda rs: any(r.header.get(h.EVENT_ID) == event_id.encode() for r in rs),
                "the task once a worker joined",
                timeout_s=20,
            )
        finally:
            stand_in.close()


def test_outcomes_from_execution_are_retried_or_dead_lettered(setup: Setup) -> None:
    """Outcome records as execution writes them: the task's headers plus msm.outcome and the
    error chain including the failed attempt."""
    schema = load_schema(setup.topology.events[THING].schema_path)
    value = wire.encode(schema, {"id": "k9", "size": 1, "colour": "red"})
    chain = ErrorChain().add(
        ErrorEntry(attempt=1, at=datetime.now(UTC), error_type="builtins.ValueError", message="x")
    )

    def outcome(subscriber: str, result: str, retry_after_ms: int | None = None) -> Sent:
        fields: dict[str, str | int] = {
            h.EVENT_ID: new_id(),
            h.EVENT_TYPE: THING,
            h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
            h.KEY: "k9",
            h.PUBLISHED_AT: int(time.time() * 1000),
            h.SUBSCRIBER: subscriber,
            h.ATTEMPT: 1,
            h.FIRST_ATTEMPT_AT: int(time.time() * 1000),
            h.OUTCOME: result,
            h.HANDLER_VERSION: "stable",
        }
        if retry_after_ms is not None:
            fields[h.RETRY_AFTER_MS] = retry_after_ms
        return b"k9", value, [*h.encode(fields), (h.ERRORS, chain.to_json())]

    unknown, retried, dead = (
        outcome("no-such-subscriber", "retriable"),
        outcome("handled", "retriable", retry_after_ms=1500),
        outcome("handled", "non_retriable"),
    )
    retried_id, dead_id = (dict(o[2])[h.EVENT_ID].decode() for o in (retried, dead))
    started = time.monotonic()
    produce(setup.bootstrap, setup.names.outcomes, [unknown, retried, dead])
    record = setup.dead_letter("handled", dead_id)
    assert record.header[h.DLQ_REASON] == b"non_retriable"
    assert ErrorChain.from_json(record.header[h.ERRORS]) == chain
    assert not {h.OUTCOME, h.RETRY_AFTER_MS} & set(record.header)
    with setup.reader(setup.names.execution("handled")) as reader:
        reader.wait_for(
            lambda rs: any(r.header.get(h.EVENT_ID) == retried_id.encode() for r in rs),
            "the retried task back on exec",
        )
        [task] = [r for r in reader.records if r.header.get(h.EVENT_ID) == retried_id.encode()]
    assert time.monotonic() - started >= 1.5  # the handler's Retry(delay=1.5 s) was honoured
    assert task.header[h.ATTEMPT] == b"2"
    assert ErrorChain.from_json(task.header[h.ERRORS]) == chain
    assert not {h.OUTCOME, h.RETRY_AFTER_MS, h.TARGET, h.TIERED_AT} & set(task.header)
    states = _states(setup.states(retried_id, TaskState.RETRYING))
    assert states == [(TaskState.RETRYING, 1)], "attempt 2's dispatch is stamped by execution"
    assert "outcome" in setup.worker.log()
    assert "no-such-subscriber" in setup.worker.log()
