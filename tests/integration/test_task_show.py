"""`msm task show` on a real broker: task records written to ``<ns>.tasks`` the way the layers
write them (keyed by event id, default partitioner), read back per subscriber."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.cli import cli
from pipeline.tasks import TaskState, state_record
from pipeline.tasks.reader import read_task_records
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.fixtures.topologies import minimal
from tests.integration._worker_proc import Sent, produce
from tests.worker_support import applied_topology

PUBLISHED = 1_700_000_000_000


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, admin: AdminClient
) -> Iterator[Topology]:
    doc = minimal()
    doc["events"]["thing.created"]["partitions"] = 4  # several tasks partitions to pick from
    directory = tmp_path_factory.mktemp("tasks")
    with applied_topology(directory, doc, kafka_bootstrap, admin) as t:
        yield t


def history(event_id: str, delayed: bool) -> list[Sent]:
    """A delayed event: thumbnailer retried once then succeeded; indexer went to the DLQ."""
    headers = {
        h.EVENT_ID: event_id.encode(),
        h.EVENT_TYPE: b"thing.created",
        h.PUBLISHED_AT: str(PUBLISHED).encode(),
    }
    if delayed:
        headers[h.DELIVER_AT] = str(PUBLISHED + 60_000).encode()
    steps = [
        ("thumbnailer", TaskState.PENDING, 1, ""),
        ("indexer", TaskState.PENDING, 1, ""),
        ("thumbnailer", TaskState.DISPATCHED, 1, ""),
        ("thumbnailer", TaskState.RUNNING, 1, ""),
        ("indexer", TaskState.DEAD, 1, "non_retriable: HTTP 400"),
        ("thumbnailer", TaskState.RETRYING, 1, "ValueError: boom; next attempt at +2s"),
        ("thumbnailer", TaskState.RUNNING, 2, ""),
        ("thumbnailer", TaskState.SUCCEEDED, 2, ""),
    ]
    out: list[Sent] = []
    for i, (subscriber, state, attempt, detail) in enumerate(steps):
        at = PUBLISHED + 60_000 + 100 * i
        key, value = state_record(headers, subscriber, state, at, attempt=attempt, detail=detail)
        out.append((key, value, []))
    return out


def show(topology: Topology, *args: str) -> Result:
    root = ["--topology", str(topology.source_path), "task", "show", *args]
    runner = CliRunner(env={"COLUMNS": "160"})  # rich reads the width from COLUMNS
    return runner.invoke(cli, root, catch_exceptions=False)


@pytest.fixture(scope="module")
def events(topology: Topology, kafka_bootstrap: str) -> list[str]:
    """A few events' histories, interleaved with unrelated events' on the same topic."""
    ids = [f"ev-{uuid.uuid4().hex[:12]}" for _ in range(6)]
    histories = [history(e, delayed=i == 0) for i, e in enumerate(ids)]
    records = [r for step in zip(*histories, strict=True) for r in step]  # interleaved
    produce(kafka_bootstrap, TopicNames(topology.namespace).tasks, records)
    return ids


def test_the_reader_finds_one_events_records_grouped_per_subscriber_in_order(
    topology: Topology, events: list[str]
) -> None:
    topic = TopicNames(topology.namespace).tasks
    found = read_task_records(topology.kafka, topic, events[1])
    assert list(found) == ["indexer", "thumbnailer"]
    assert [r.state for r in found["indexer"]] == [TaskState.PENDING, TaskState.DEAD]
    thumbs = found["thumbnailer"]
    assert [(r.state.value, r.attempt) for r in thumbs] == [
        ("pending", 1),
        ("dispatched", 1),
        ("running", 1),
        ("retrying", 1),
        ("running", 2),
        ("succeeded", 2),
    ]
    assert {r.event_id for rs in found.values() for r in rs} == {events[1]}


def test_show_prints_each_subscribers_lifecycle(topology: Topology, events: list[str]) -> None:
    started = time.monotonic()
    result = show(topology, events[0])
    assert time.monotonic() - started < 10
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{events[0]}/indexer" in out
    assert f"{events[0]}/thumbnailer" in out
    thumbs = out[out.index(f"{events[0]}/thumbnailer") :]
    order = ["accepted", "scheduled", "pending", "dispatched", "running", "retrying", "succeeded"]
    positions = [thumbs.index(state) for state in order]
    assert positions == sorted(positions), thumbs
    assert "2023-11-14 22:13:20.000Z" in out  # accepted at published_at
    assert "2023-11-14 22:14:20.000Z" in out  # scheduled for deliver_at
    assert "ValueError: boom" in out
    assert "non_retriable: HTTP 400" in out


def test_show_one_task_as_json(topology: Topology, events: list[str]) -> None:
    result = show(topology, f"{events[2]}/indexer", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["event_id"] == events[2]
    assert list(doc["tasks"]) == ["indexer"]
    task = doc["tasks"]["indexer"]
    assert task["task_id"] == f"{events[2]}/indexer"
    assert [s["state"] for s in task["lifecycle"]] == ["accepted", "pending", "dead"]
    assert task["records"][-1]["detail"] == "non_retriable: HTTP 400"


def test_an_unknown_event_or_subscriber_is_a_clear_error(
    topology: Topology, events: list[str]
) -> None:
    unknown = show(topology, "ev-never-published")
    assert unknown.exit_code == 1
    assert "no task of event 'ev-never-published'" in unknown.output
    wrong = show(topology, f"{events[3]}/mailer")
    assert wrong.exit_code == 1
    assert "no task for subscriber 'mailer'" in wrong.output
    assert "indexer, thumbnailer" in wrong.output
