"""The execution layer alone: tasks produced straight to ``<ns>.exec.<s>``, an ``msm worker
--layers execution`` running the handlers of :mod:`tests.integration.handlers_support`.

What ran is read from the handlers' ledger file; what execution wrote from its topics (done,
tasks, outcomes), read by assignment from the start.
"""

from __future__ import annotations

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
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.tasks import parse_record
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import SCHEMAS
from tests.integration._worker_proc import produce
from tests.worker_support import Record, TopicReader, Worker, applied_topology

H = "tests.integration.handlers_support:"
THING = EventSchemas.load(SCHEMAS / "thing.v2.avsc")


def _sub(handler: str, **extra: Any) -> dict[str, Any]:
    return {"events": ["thing.created"], "handler": H + handler, **extra}


DOCUMENT: dict[str, Any] = {
    "delay_tiers": ["1s"],
    "events": {"thing.created": {"schema": "schemas/thing.v2.avsc", "partitions": 2, "key": "id"}},
    "subscribers": {
        "capped": _sub("slow", max_in_flight=2, concurrency={"min": 1, "max": 4}),
        "scaled": _sub("slow", concurrency={"min": 1, "max": 3}),
        "mixed": _sub(
            "mixed",
            timeout="500ms",
            retry={"max_attempts": 5, "backoff": "fixed", "initial": "100ms", "max": "100ms"},
        ),
        "ordered": _sub(
            "mixed",
            ordered=True,
            retry={"max_attempts": 5, "backoff": "fixed", "initial": "100ms", "max": "100ms"},
        ),
        "canaried": _sub(
            "stable",
            concurrency={"min": 1, "max": 1},
            canary={"handler": H + "canary_fails", "percent": 50, "error_rate_threshold": 0.1},
        ),
        # Pinned concurrency: what lowers the runs at once can only be the back-off.
        "troubled": _sub(
            "slow", timeout="1500ms", max_in_flight=8, concurrency={"min": 8, "max": 8}
        ),
    },
}


@dataclass
class Layer:
    topology: Topology
    bootstrap: str
    ledger: Path
    worker: Worker

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.topology.namespace)

    def reader(self, topic: str) -> TopicReader:
        partitions = {p.name: p.partitions for p in plan_topics(self.topology)}[topic]
        return TopicReader(self.bootstrap, topic, partitions)

    def send(self, sub: str, ids: list[str], size: int = 0, **headers: bytes) -> list[str]:
        """Tasks for ``sub`` as flow would make them; their task ids."""
        records = [task(sub, i, size, **headers) for i in ids]
        produce(self.bootstrap, self.names.execution(sub), records)
        return [f"ev-{i}/{sub}" for i in ids]

    def runs(self, sub: str, phase: str = "start") -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        lines = [json.loads(x) for x in self.ledger.read_text().splitlines() if x]
        return [x for x in lines if x["sub"] == sub and x["phase"] == phase]


def task(
    sub: str, id_: str, size: int = 0, **headers: bytes
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    value = wire.encode(THING.current, {"id": id_, "size": size, "colour": "red"})
    header_list = [
        (h.EVENT_ID, f"ev-{id_}".encode()),
        (h.EVENT_TYPE, b"thing.created"),
        (h.SCHEMA_FINGERPRINT, THING.current.fingerprint_hex.encode()),
        (h.KEY, id_.encode()),
        (h.PUBLISHED_AT, str(int(time.time() * 1000)).encode()),
        (h.SUBSCRIBER, sub.encode()),
        (h.ATTEMPT, b"1"),
        *((k.replace("_", "."), v) for k, v in headers.items()),
    ]
    return id_.encode(), value, header_list


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def keyed(records: list[Record], wanted: set[bytes]) -> list[Record]:
    return [r for r in records if r.key in wanted]


def states(records: list[Record], task_ids: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in task_ids}
    for r in records:
        rec = parse_record(r.value)
        if rec.task_id in out:
            out[rec.task_id].append(rec.state.value)
    return out


@pytest.fixture(scope="module")
def layer(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Layer]:
    directory = tmp_path_factory.mktemp("execution")
    ledger = directory / "ledger.jsonl"
    with applied_topology(directory, DOCUMENT, kafka_bootstrap, admin) as topology:
        env = {"MSM_TEST_LEDGER": str(ledger)}
        with Worker(topology, ["execution"], directory / "worker.log", env=env) as worker:
            print(f"worker ready {worker.wait_ready(60):.2f} s after launch")
            yield Layer(topology, kafka_bootstrap, ledger, worker)
            assert worker.stop() == 0, worker.tail()


def wait(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def test_success_is_recorded_as_done_and_succeeded(layer: Layer) -> None:
    ids = [uid("ok") for _ in range(5)]
    tasks = set(layer.send("mixed", ids))
    with layer.reader(layer.names.done("mixed")) as done:
        got = done.wait_for(lambda rs: tasks <= {r.key.decode() for r in rs if r.key}, "done")
        for r in got:
            if r.key and r.key.decode() in tasks:
                assert json.loads(r.value)["at"] > 0
    with layer.reader(layer.names.tasks) as reader:
        reader.wait_for(
            lambda rs: all("succeeded" in s for s in states(rs, tasks).values()), "succeeded"
        )
        found = states(reader.records, tasks).values()
        assert all(s == ["succeeded"] for s in found), "quick runs: start stamped on succeeded"
    with layer.reader(layer.names.outcomes) as outcomes:
        assert keyed(outcomes.poll(0.5), {i.encode() for i in ids}) == []
    assert sorted(r["task"] for r in layer.runs("mixed", "end") if r["task"] in tasks) == sorted(
        tasks
    )


def test_failures_become_outcomes_with_their_error_chain(layer: Layer) -> None:
    fail, retry, dead, hang = uid("fail"), uid("retry"), uid("dead"), uid("hang")
    earlier = ErrorChain().add(
        ErrorEntry(attempt=1, at=time.time(), error_type="builtins.OSError", message="first")
    )
    layer.send("mixed", [retry, dead, hang])
    layer.send("mixed", [fail], msm_attempt=b"2", msm_errors=earlier.to_json())
    keys = {k.encode() for k in (fail, retry, dead, hang)}
    with layer.reader(layer.names.outcomes) as reader:
        reader.wait_for(lambda rs: len(keyed(rs, keys)) == 4, "four outcomes")
        got = {r.key: r for r in keyed(reader.poll(0.3), keys)}
    assert len(got) == 4, "one outcome per failed task"
    by = {k.decode().split("-")[0]: r.header for k, r in got.items() if k}
    assert by["fail"][h.OUTCOME] == b"retriable"
    assert by["fail"][h.ATTEMPT] == b"2"
    chain = ErrorChain.from_json(by["fail"][h.ERRORS])
    assert [(e.attempt, e.error_type) for e in chain.errors] == [
        (1, "builtins.OSError"),
        (2, "builtins.RuntimeError"),
    ]
    assert by["fail"][h.HANDLER_VERSION] == b"stable"
    assert by["retry"][h.OUTCOME] == b"retriable"
    assert by["retry"][h.RETRY_AFTER_MS] == b"7500"
    assert by["dead"][h.OUTCOME] == b"non_retriable"
    assert h.RETRY_AFTER_MS not in by["dead"]
    assert by["hang"][h.OUTCOME] == b"retriable"
    assert ErrorChain.from_json(by["hang"][h.ERRORS]).errors[-1].error_type == "timeout"
    assert got[fail.encode()].value == task("mixed", fail)[1], "the payload, untouched"
    with layer.reader(layer.names.done("mixed")) as done:
        assert keyed(done.poll(0.5), {f"ev-{k.decode()}/mixed".encode() for k in keys}) == []


def test_ordered_retries_in_place(layer: Layer) -> None:
    flaky, after = uid("flaky"), uid("ok")
    tasks = set(layer.send("ordered", [flaky, after]))
    with layer.reader(layer.names.tasks) as reader:
        reader.wait_for(
            lambda rs: all("succeeded" in s for s in states(rs, tasks).values()), "both succeed"
        )
        flaky_states = states(reader.records, tasks)[f"ev-{flaky}/ordered"]
    assert flaky_states == ["running", "retrying", "running", "retrying", "succeeded"]
    attempts = [r["attempt"] for r in layer.runs("ordered") if r["task"] == f"ev-{flaky}/ordered"]
    assert attempts == [1, 2, 3]
    with layer.reader(layer.names.outcomes) as outcomes:
        assert keyed(outcomes.poll(0.5), {flaky.encode()}) == []


def test_max_in_flight_is_never_exceeded(layer: Layer) -> None:
    tasks = set(layer.send("capped", [uid("c") for _ in range(20)], size=100))
    wait(lambda: tasks <= {r["task"] for r in layer.runs("capped", "end")}, "every capped run")
    runs = [r for r in layer.runs("capped") if r["task"] in tasks]
    assert len(runs) == 20
    assert max(r["running"] for r in runs) == 2


def test_concurrency_scales_up_to_max_and_never_beyond(layer: Layer) -> None:
    tasks = set(layer.send("scaled", [uid("s") for _ in range(40)], size=200))
    wait(lambda: tasks <= {r["task"] for r in layer.runs("scaled", "end")}, "every run", 30)
    peaks = [r["running"] for r in layer.runs("scaled") if r["task"] in tasks]
    assert max(peaks) == 3, "scaled from 1 to concurrency.max under a backlog"
    assert peaks[0] == 1, "starts at concurrency.min"


def test_a_failing_canary_is_rolled_back(layer: Layer) -> None:
    tasks = set(layer.send("canaried", [uid("k") for _ in range(120)]))
    wait(lambda: len([r for r in layer.runs("canaried") if r["task"] in tasks]) == 120, "runs")
    runs = [r for r in layer.runs("canaried") if r["task"] in tasks]
    canary = [r for r in runs if r["version"] == "canary"]
    assert len(canary) == 20, "rolled back at the 20th canary failure (concurrency 1)"
    last_canary = max(runs.index(r) for r in canary)
    assert all(r["version"] == "stable" for r in runs[last_canary + 1 :])
    layer.worker.wait_for_log("canary rolled back to 0%", 5)
    assert layer.worker.log().count("canary rolled back") == 1


def test_timeouts_back_off_and_successes_recover(layer: Layer) -> None:
    # 8 runs at once time out together (limit 8 -> 4); the next 4 time out over a cooldown
    # later (-> 2). Successes then bring the error rate down and the limit back to 8.
    hang = [uid("t") for _ in range(12)]
    hung = set(layer.send("troubled", hang, size=5000))
    with layer.reader(layer.names.outcomes) as outcomes:
        keys = {i.encode() for i in hang}
        outcomes.wait_for(lambda rs: len(keyed(rs, keys)) == 12, "twelve timeouts")
    layer.worker.wait_for_log("execution troubled: backing off", 5)
    timed_out = [r for r in layer.runs("troubled") if r["task"] in hung]
    assert max(r["running"] for r in timed_out[:8]) == 8, "the first wave ran at the full limit"
    assert max(r["running"] for r in timed_out[8:]) <= 4, "halved after the first timeouts"
    tasks = set(layer.send("troubled", [uid("ok") for _ in range(120)], size=100))
    wait(lambda: tasks <= {r["task"] for r in layer.runs("troubled", "end")}, "every run", 30)
    runs = [r for r in layer.runs("troubled") if r["task"] in tasks]
    assert max(r["running"] for r in runs[:2]) <= 2, "the successes start backed off"
    # Up to 4 on the first successes, then no higher until they outweigh the 12 timeouts
    # in the error-rate window (48 of them).
    assert max(r["running"] for r in runs[:30]) <= 4, "still backed off while errors dominate"
    assert max(r["running"] for r in runs) == 8, "recovered to the full limit"
    layer.worker.wait_for_log("execution troubled: recovered", 5)
    log = layer.worker.log()
    assert log.count("execution troubled: backing off") == 1
    assert log.count("execution troubled: recovered") == 1


def test_no_task_done_before_a_sigkill_runs_again_after_the_restart(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    document = {
        **DOCUMENT,
        "subscribers": {"crash": _sub("slow", concurrency={"min": 2, "max": 2})},
    }
    ledger = tmp_path / "ledger.jsonl"
    # Offsets are not committed before the kill: every task is redelivered to the new worker.
    env = {"MSM_TEST_LEDGER": str(ledger), "MSM_FAUST_BROKER_COMMIT_INTERVAL": "30"}
    log = tmp_path / "worker.log"
    with applied_topology(tmp_path, document, kafka_bootstrap, admin) as topology:
        first = Worker(topology, ["execution"], log, env=env)
        with first:
            first.wait_ready(60)
            layer = Layer(topology, kafka_bootstrap, ledger, first)
            tasks = set(layer.send("crash", [uid("x") for _ in range(20)], size=400))
            with layer.reader(layer.names.done("crash")) as done:
                done.wait_for(lambda rs: len(rs) >= 6, "some tasks done")
                done_before = {r.key.decode() for r in done.records if r.key}
                first.kill()
        before = layer.runs("crash")
        unfinished = {r["task"] for r in before} - {r["task"] for r in layer.runs("crash", "end")}
        assert unfinished, "the kill interrupted running tasks"
        with Worker(topology, ["execution"], log, env=env) as second:
            second.wait_ready(60)
            wait(
                lambda: tasks <= {r["task"] for r in layer.runs("crash", "end")},
                "every task finished",
                40,
            )
            with layer.reader(layer.names.tasks) as reader:
                reader.wait_for(
                    lambda rs: all(
                        "skipped" in s for t, s in states(rs, tasks).items() if t in done_before
                    ),
                    "skipped states of the redelivered done tasks",
                )
            assert second.stop() == 0, second.tail()
        rerun = {r["task"] for r in layer.runs("crash") if r["pid"] == second.proc.pid}
        assert not rerun & done_before, "a task done before the kill ran again"
        assert unfinished <= rerun, "tasks killed mid-run run again"
        assert done_before <= tasks
