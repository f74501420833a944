"""All five layers in one ``msm worker`` process: publish at ingress, check what handlers ran.

The handlers (:mod:`tests.integration.e2e_handlers`) append to a ledger file, so every check
here is on what actually ran, seen from outside the worker: fan-out through filters, the
in-flight cap, the rate limit, priority lanes, isolation from a stuck subscriber, retries
through the delay tiers, dead letters, and per-key order through a retry.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain
from pipeline.client import Publisher
from pipeline.ops.dlq_redrive import plan_redrive, redrive
from pipeline.tasks import TaskState
from pipeline.tasks.lifecycle import lifecycle
from pipeline.tasks.reader import read_task_records
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.worker_support import TopicReader, Worker, applied_topology

H = "tests.integration.e2e_handlers:"
LAYERS = ["frontend", "scheduler", "flow", "delivery", "execution"]
FAST_RETRY = {"max_attempts": 5, "backoff": "fixed", "initial": "1s", "max": "1s"}


def _on_things(filter_: str | None, handler: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"events": ["thing.created"], "handler": H + handler, **extra}
    if filter_ is not None:
        spec["filter"] = filter_
    return spec


def _on_others(prefix: str, handler: str, **extra: Any) -> dict[str, Any]:
    return {
        "events": ["other.happened"],
        "filter": f"key.startsWith('{prefix}')",
        "handler": H + handler,
        **extra,
    }


DOCUMENT: dict[str, Any] = {
    "delay_tiers": ["1s", "5s"],
    "events": {
        "thing.created": {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"},
        "other.happened": {"schema": "schemas/other.avsc", "partitions": 2, "key": "key"},
    },
    "subscribers": {
        "all": _on_things(None, "record"),
        "small": _on_things("size < 100", "record"),
        "red": _on_things("colour == 'red'", "record"),
        "flaky": _on_things("colour == 'green'", "fail_twice", retry=FAST_RETRY),
        "doomed": _on_things("colour == 'black'", "reject", non_retriable=["builtins.ValueError"]),
        "exhaust": _on_things(
            "colour == 'grey'", "always_fail", retry={**FAST_RETRY, "max_attempts": 2}
        ),
        "limited": _on_others(
            "lim", "slow_record", max_in_flight=2, concurrency={"min": 2, "max": 4}
        ),
        "rated": _on_others("rate", "record", rate_limit="10/s"),
        "stuck": _on_others("stuck", "hang", max_in_flight=1, timeout="10m"),
        "prio": _on_others(
            "prio", "slow_record", max_in_flight=1, concurrency={"min": 1, "max": 1}
        ),
        "ordered": _on_others("ord", "fail_seq_3_once", ordered=True, retry=FAST_RETRY),
    },
}


@dataclass(frozen=True)
class Pipeline:
    topology: Topology
    bootstrap: str
    publisher: Publisher
    ledger_path: Path

    def ledger(self, subscriber: str) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        lines = self.ledger_path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line]
        return [r for r in rows if r["sub"] == subscriber]

    def wait(
        self, subscriber: str, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.ledger(subscriber)
            if done(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{subscriber}: timed out; ledger has {rows}")
            time.sleep(0.05)

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)


@pytest.fixture(scope="module")
def pipe(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Pipeline]:
    directory = tmp_path_factory.mktemp("layers")
    ledger = directory / "ledger.jsonl"
    with applied_topology(directory, DOCUMENT, kafka_bootstrap, admin) as topology:
        env = {"MSM_TEST_LEDGER": str(ledger)}
        worker = Worker(topology, LAYERS, directory / "worker.log", env=env)
        with worker:
            publisher = Publisher(topology)
            try:
                print(f"worker ready {worker.wait_ready(90):.2f} s after launch")
                yield Pipeline(topology, kafka_bootstrap, publisher, ledger)
            finally:
                publisher.close()
            code = worker.stop()
            assert code == 0, worker.tail()


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _thing(tag: str, i: int, size: int, colour: str) -> dict[str, Any]:
    return {"id": f"{tag}-{i}", "size": size, "colour": colour}


def _ids(rows: list[dict[str, Any]], tag: str) -> list[str]:
    return sorted(str(r["payload"]["id"]) for r in rows if str(r["payload"]["id"]).startswith(tag))


def test_each_event_reaches_every_subscriber_whose_filter_matches_once(pipe: Pipeline) -> None:
    tag = _tag()
    things = [_thing(tag, i, size=50 * i, colour=("red", "blue")[i % 2]) for i in range(12)]
    pipe.publisher.publish_many("thing.created", things)
    every = sorted(t["id"] for t in things)
    assert _ids(pipe.wait("all", lambda r: len(_ids(r, tag)) >= 12), tag) == every
    small = sorted(t["id"] for t in things if t["size"] < 100)
    red = sorted(t["id"] for t in things if t["colour"] == "red")
    assert _ids(pipe.wait("small", lambda r: len(_ids(r, tag)) >= len(small)), tag) == small
    assert _ids(pipe.wait("red", lambda r: len(_ids(r, tag)) >= len(red)), tag) == red
    time.sleep(1)  # nothing more arrives: each task ran once
    assert _ids(pipe.ledger("all"), tag) == every
    assert _ids(pipe.ledger("small"), tag) == small


def _others(pipe: Pipeline, keys: list[str], **kwargs: Any) -> list[str]:
    return [pipe.publisher.publish("other.happened", {"key": k}, **kwargs) for k in keys]


def _keys(rows: list[dict[str, Any]], prefix: str) -> list[str]:
    return [str(r["payload"]["key"]) for r in rows if str(r["payload"]["key"]).startswith(prefix)]


def test_max_in_flight_is_never_exceeded(pipe: Pipeline) -> None:
    prefix = f"lim-{_tag()}"
    pipe.publisher.publish_many("other.happened", [{"key": f"{prefix}-{i}"} for i in range(40)])
    rows = pipe.wait("limited", lambda r: len(_keys(r, prefix)) >= 40)
    mine = [r for r in rows if str(r["payload"]["key"]).startswith(prefix)]
    assert max(r["overlapping"] for r in mine) == 2  # concurrency 2..4, max_in_flight 2


def test_the_rate_limit_holds(pipe: Pipeline) -> None:
    prefix = f"rate-{_tag()}"
    pipe.publisher.publish_many("other.happened", [{"key": f"{prefix}-{i}"} for i in range(31)])
    rows = pipe.wait("rated", lambda r: len(_keys(r, prefix)) >= 31, timeout_s=60)
    starts = sorted(r["start"] for r in rows if str(r["payload"]["key"]).startswith(prefix))
    # 10/s with a burst of 1: the 30 runs after the first take 3 s
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 9.0 <= rate <= 11.0, rate


def test_high_priority_tasks_overtake_a_low_priority_backlog(pipe: Pipeline) -> None:
    prefix = f"prio-{_tag()}"
    low = [{"key": f"{prefix}-low-{i}"} for i in range(30)]
    high = [{"key": f"{prefix}-high-{i}"} for i in range(5)]
    pipe.publisher.publish_many("other.happened", low, headers={h.PRIORITY: "low"})
    pipe.publisher.publish_many("other.happened", high, headers={h.PRIORITY: "high"})
    rows = pipe.wait("prio", lambda r: len(_keys(r, prefix)) >= 35, timeout_s=30)
    order = _keys(sorted(rows, key=lambda r: r["start"]), prefix)
    last_high = max(order.index(k["key"]) for k in high)
    # 50 ms per task, one at a time: the highs arrive while ~30 lows wait, and go first
    assert last_high < 20, order


def test_a_stuck_subscriber_holds_back_only_itself(pipe: Pipeline) -> None:
    prefix = f"stuck-{_tag()}"
    _others(pipe, [f"{prefix}-{i}" for i in range(5)])
    pipe.wait("stuck", lambda r: len(_keys(r, prefix)) >= 1)
    tag = _tag()
    sent = time.time()
    pipe.publisher.publish_many("thing.created", [_thing(tag, i, 1000, "blue") for i in range(20)])
    rows = pipe.wait("all", lambda r: len(_ids(r, tag)) >= 20)
    latest = max(r["end"] for r in rows if str(r["payload"]["id"]).startswith(tag))
    assert latest - sent < 5.0
    assert len(_keys(pipe.ledger("stuck"), prefix)) == 1  # its cap is 1, and that one hangs


def test_a_failing_handler_is_retried_through_the_delay_tiers_until_it_succeeds(
    pipe: Pipeline,
) -> None:
    tag = _tag()
    pipe.publisher.publish("thing.created", _thing(tag, 0, 1, "green"))
    rows = pipe.wait("flaky", lambda r: any(x["ok"] for x in r if _ids([x], tag)))
    mine = [r for r in rows if str(r["payload"]["id"]).startswith(tag)]
    assert [r["attempt"] for r in mine] == [1, 2, 3]
    gaps = [b["start"] - a["start"] for a, b in itertools.pairwise(mine)]
    assert all(gap >= 0.99 for gap in gaps), gaps  # fixed 1 s back-off, never early


def _dead_letters(pipe: Pipeline, subscriber: str, event_id: str) -> list[Any]:
    topic = pipe.names.dlq(subscriber)
    count = next(p.partitions for p in plan_topics(pipe.topology) if p.name == topic)
    with TopicReader(pipe.bootstrap, topic, count) as reader:
        records = reader.wait_for(
            lambda rs: any(r.header.get(h.EVENT_ID) == event_id.encode() for r in rs),
            f"a dead letter for {event_id}",
        )
    return [r for r in records if r.header.get(h.EVENT_ID) == event_id.encode()]


def test_non_retriable_errors_dead_letter_at_once(pipe: Pipeline) -> None:
    tag = _tag()
    event_id = pipe.publisher.publish("thing.created", _thing(tag, 0, 1, "black"))
    [dead] = _dead_letters(pipe, "doomed", event_id)
    assert dead.header[h.DLQ_REASON] == b"non_retriable"
    chain = ErrorChain.from_json(dead.header[h.ERRORS])
    assert [e.error_type for e in chain.errors] == ["builtins.ValueError"]
    assert len(_ids(pipe.ledger("doomed"), tag)) == 1


def test_exhausted_retries_dead_letter_with_every_attempts_error(pipe: Pipeline) -> None:
    tag = _tag()
    event_id = pipe.publisher.publish("thing.created", _thing(tag, 0, 1, "grey"))
    [dead] = _dead_letters(pipe, "exhaust", event_id)
    assert dead.header[h.DLQ_REASON] == b"exhausted"
    chain = ErrorChain.from_json(dead.header[h.ERRORS])
    assert [e.attempt for e in chain.errors] == [1, 2]
    assert {e.message for e in chain.errors} == {"always"}
    assert dead.value  # the original payload travels with it


def test_an_ordered_subscriber_keeps_per_key_order_through_a_retry(pipe: Pipeline) -> None:
    tag = _tag()
    for k in ("a", "b"):
        for seq in range(6):
            key = f"ord-{tag}-{k}"
            pipe.publisher.publish("other.happened", {"key": f"{key}-{seq}"}, key=key)
    rows = pipe.wait(
        "ordered", lambda r: sum(1 for x in r if x["ok"] and tag in str(x["payload"]["key"])) >= 12
    )
    mine_rows = [r for r in rows if tag in str(r["payload"]["key"])]
    assert {r["key"] for r in mine_rows} == {f"ord-{tag}-a", f"ord-{tag}-b"}  # meta.key
    for k in ("a", "b"):
        done = [str(r["payload"]["key"]) for r in rows if r["ok"]]
        mine = [d for d in done if d.startswith(f"ord-{tag}-{k}-")]
        assert mine == [f"ord-{tag}-{k}-{seq}" for seq in range(6)]


def test_a_redriven_dead_letter_runs_again_from_attempt_one(pipe: Pipeline) -> None:
    tag = _tag()
    event_id = pipe.publisher.publish("thing.created", _thing(tag, 0, 1, "grey"))
    _dead_letters(pipe, "exhaust", event_id)
    plan = plan_redrive(pipe.topology, "exhaust")
    assert plan.total >= 1
    result = redrive(pipe.topology, plan)
    assert result.redriven == plan.total
    rows = pipe.wait("exhaust", lambda r: len(_ids(r, tag)) >= 4)
    assert [r["attempt"] for r in rows if _ids([r], tag)] == [1, 2, 1, 2]


def test_every_state_change_is_in_the_task_history_within_a_second(pipe: Pipeline) -> None:
    tag = _tag()
    event_id = pipe.publisher.publish("thing.created", _thing(tag, 0, 5, "red"))
    [run] = [r for r in pipe.wait("red", lambda r: len(_ids(r, tag)) >= 1) if _ids([r], tag)]
    while True:
        history = read_task_records(pipe.topology.kafka, pipe.names.tasks, event_id)
        states = {sub: [r.state for r in records] for sub, records in history.items()}
        if states.get("red", [])[-1:] == [TaskState.SUCCEEDED]:
            break
        assert time.time() - run["end"] < 1.0, states
    seen = time.time()
    assert seen - run["end"] < 1.5  # the read itself takes a moment
    assert states["red"] == [TaskState.PENDING, TaskState.SUCCEEDED], "a quick run: 2 records"
    steps = [(s.state, s.at_ms) for s in lifecycle(history["red"])]
    shown = ["accepted", "pending", "dispatched", "running", "succeeded"]
    assert [state for state, _ in steps] == shown
    assert [at for _, at in steps] == sorted(at for _, at in steps), steps
    assert sorted(states) == ["all", "red", "small"]  # size 5 < 100; not green, black or grey
    records = history["red"]
    assert {r.event_type for r in records} == {"thing.created"}
    assert all(r.published_at_ms is not None for r in records)
