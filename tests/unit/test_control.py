"""Operator gating without a broker: the control record, the drop rule, the gates' holds, the
drop path to the dead-letter topic, and the CLI's argument errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from pipeline import headers as h
from pipeline.agents.delivery_control import PAUSED, SYNC, Gates, drop_to_dlq
from pipeline.agents.delivery_failures import Failures
from pipeline.agents.delivery_policy import ErrorChain
from pipeline.cli import cli
from pipeline.gate.pump import Pump, Task
from pipeline.metrics import make_metrics
from pipeline.ops.control.record import (
    DROP_REASON,
    ControlRecordError,
    ControlState,
    decode,
    drop_applies,
    drop_message,
)
from pipeline.ops.control.store import BadTimeError, check_subscriber, cutoff_ms
from pipeline.ops.dlq import UnknownSubscriberError
from pipeline.tasks import TaskState, parse_record
from pipeline.topology import SubscriberSpec, Topology, load_topology
from pipeline.topology.topics import TopicNames, plan_topics
from tests.fixtures.topologies import minimal, write_topology

NOW_MS = 1_900_000_000_000
HOUR_MS = 3_600_000
NAMES = TopicNames("ns")


# -- the record -------------------------------------------------------------------------------


def test_a_state_round_trips_through_json() -> None:
    state = ControlState(subscriber="s").pause("al@h", NOW_MS).drop(NOW_MS - HOUR_MS, "bo@h", 7)
    assert decode(b"s", state.to_json()) == state
    doc = json.loads(state.to_json())
    assert doc["paused"] is True
    assert (doc["paused_by"], doc["paused_at_ms"]) == ("al@h", NOW_MS)
    assert (doc["drop_before_ms"], doc["drop_by"], doc["drop_at_ms"]) == (
        NOW_MS - HOUR_MS,
        "bo@h",
        7,
    )
    assert (doc["by"], doc["at_ms"], doc["version"]) == ("bo@h", 7, 1)


def test_resume_keeps_the_drop_and_clear_keeps_the_pause() -> None:
    state = ControlState(subscriber="s").pause("a", 1).drop(NOW_MS, "b", 2)
    resumed = state.resume("c", 3)
    assert not resumed.paused
    assert resumed.paused_by == ""
    assert resumed.paused_at_ms is None
    assert resumed.drop_before_ms == NOW_MS
    cleared = state.drop(None, "d", 4)
    assert cleared.paused
    assert cleared.drop_before_ms is None
    assert cleared.drop_at_ms is None
    assert cleared.resume("e", 5).default


def test_a_tombstone_is_the_default_state() -> None:
    state = decode(b"s", None)
    assert state == ControlState(subscriber="s")
    assert state.default


def test_unknown_fields_of_a_newer_writer_are_ignored() -> None:
    state = decode(b"s", b'{"subscriber": "s", "paused": true, "future_field": 1}')
    assert state.paused


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (None, b"{}", "without a key"),
        (b"\xff", b"{}", "not UTF-8"),
        (b"s", b"not json", "control record of 's'"),
        (b"s", b'{"subscriber": "s", "paused": "maybe"}', "paused"),
        (b"s", b'{"subscriber": "other"}', "names subscriber 'other'"),
    ],
)
def test_bad_records_are_refused_with_the_reason(
    key: bytes | None, value: bytes, problem: str
) -> None:
    with pytest.raises(ControlRecordError, match=problem):
        decode(key, value)


def test_as_a_json_document_instants_are_also_iso_text() -> None:
    doc = ControlState(subscriber="s").pause("a", 1_700_000_000_000).to_dict()
    assert doc["paused_at"] == "2023-11-14T22:13:20.000Z"
    assert doc["drop_before"] is None


# -- the drop rule ----------------------------------------------------------------------------

DROP = ControlState(subscriber="s").drop(NOW_MS - HOUR_MS, "op@h", NOW_MS)


def _headers(published_ms: int | None, attempt: int = 1, **extra: bytes) -> dict[str, bytes]:
    found = {h.ATTEMPT: str(attempt).encode(), **extra}
    if published_ms is not None:
        found[h.PUBLISHED_AT] = str(published_ms).encode()
    return found


@pytest.mark.parametrize(
    ("headers", "queued_ms", "dropped"),
    [
        (_headers(NOW_MS - 2 * HOUR_MS), NOW_MS - 1, True),  # old, waiting at the drop
        (_headers(NOW_MS - 2 * HOUR_MS), NOW_MS, True),  # queued the same millisecond
        (_headers(NOW_MS - HOUR_MS), NOW_MS - 1, False),  # at the cut-off: not before it
        (_headers(NOW_MS - 10), NOW_MS - 1, False),  # newer than the cut-off
        (_headers(None), NOW_MS - 1, False),  # age unknown: delivered
        # Queued after the drop: a delayed event that came due, or a redrive: spared ...
        (_headers(NOW_MS - 2 * HOUR_MS), NOW_MS + 1, False),
        (_headers(NOW_MS - 2 * HOUR_MS, 3, **{h.REDRIVEN_FROM: b"t:0:1"}), NOW_MS + 1, False),
        # ... but a retry of a task that failed before was pending all along.
        (_headers(NOW_MS - 2 * HOUR_MS, 2), NOW_MS + 60_000, True),
    ],
)
def test_drop_applies_to_old_tasks_pending_at_the_drop(
    headers: dict[str, bytes], queued_ms: int, dropped: bool
) -> None:
    assert drop_applies(DROP, headers, queued_ms) is dropped


def test_no_cut_off_drops_nothing() -> None:
    state = ControlState(subscriber="s").pause("a", NOW_MS)
    assert not drop_applies(state, _headers(0), 0)


def test_the_drop_message_names_who_when_and_the_cut_off() -> None:
    message = drop_message(DROP)
    assert "op@h" in message
    assert "2030-03-17T17:46:40.000Z" in message  # when it was issued
    assert "published before 2030-03-17T16:46:40.000Z" in message


def test_a_future_cut_off_is_refused() -> None:
    now = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    assert cutoff_ms(now - timedelta(hours=2), NOW_MS) == NOW_MS - 2 * HOUR_MS
    with pytest.raises(BadTimeError, match=r"--before: .* is in the future"):
        cutoff_ms(now + timedelta(seconds=1), NOW_MS)


# -- the gates --------------------------------------------------------------------------------


async def _noop(_task: Task) -> None:
    return None


def _pump(name: str = "s") -> Pump:
    return Pump("delivery", name, _noop, max_in_flight=4, partitions=1)


def _task(headers: dict[str, bytes], timestamp_ms: int = NOW_MS - 1) -> Task:
    pairs = list(headers.items())
    return Task(("ns.sub.s", 0), 5, b"k", b"v", dict(pairs), pairs, timestamp_ms)


def test_gates_hold_until_the_control_topic_is_read() -> None:
    gates, a, b = Gates("delivery"), _pump("a"), _pump("b")
    gates.add("a", a)
    gates.add("b", b)
    assert a.held
    assert b.held
    gates.apply(ControlState(subscriber="a").pause("op", 1))
    gates.sync()
    assert a.held
    assert not b.held
    late = _pump("late")
    gates.add("late", late)
    assert not late.held


def test_pause_and_resume_hold_and_release_the_gate() -> None:
    gates, pump = Gates("delivery"), _pump()
    gates.add("s", pump)
    gates.sync()
    state = ControlState(subscriber="s").pause("op", 1)
    gates.apply(state)
    assert pump.held
    gates.apply(state.drop(NOW_MS, "op", 2))  # another change keeps the pause
    assert pump.held
    gates.apply(state.resume("op", 3))
    assert not pump.held
    gates.apply(ControlState(subscriber="unknown-here").pause("op", 4))  # no gate: ignored
    assert gates.states["unknown-here"].paused


def test_the_operator_hold_is_independent_of_other_holds() -> None:
    gates, pump = Gates("delivery"), _pump()
    gates.add("s", pump)
    gates.sync()
    pump.hold("unhealthy")
    gates.apply(ControlState(subscriber="s").pause("op", 1))
    gates.apply(ControlState(subscriber="s").resume("op", 2))
    assert pump.held  # still unhealthy
    pump.release("unhealthy")
    assert not pump.held
    assert PAUSED != SYNC


async def test_guard_dead_letters_dropped_tasks_and_processes_the_rest() -> None:
    gates = Gates("delivery")
    gates.sync()
    gates.apply(DROP)
    processed: list[int] = []
    dropped: list[tuple[int, ControlState]] = []

    async def process(task: Task) -> None:
        processed.append(task.timestamp_ms)

    async def dead_letter(task: Task, state: ControlState) -> None:
        dropped.append((task.timestamp_ms, state))

    guarded = gates.guard("s", process, dead_letter)
    await guarded(_task(_headers(NOW_MS - 2 * HOUR_MS), timestamp_ms=1))
    await guarded(_task(_headers(NOW_MS), timestamp_ms=2))
    assert processed == [2]
    assert dropped == [(1, DROP)]
    other = gates.guard("t", process, dead_letter)  # another subscriber: no drop
    await other(_task(_headers(NOW_MS - 2 * HOUR_MS), timestamp_ms=3))
    assert processed == [2, 3]


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, h.HeaderList]] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: h.HeaderList, _p: int | None
    ) -> asyncio.Future[object]:
        self.sent.append((topic, key, value, list(headers)))
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_dropped_task_is_dead_lettered_with_the_reason_and_who_dropped_it() -> None:
    producer = _Producer()
    failures = Failures(
        NAMES, producer.send, make_metrics(CollectorRegistry()), clock_ms=lambda: NOW_MS + 5
    )
    spec = SubscriberSpec.model_validate(
        {"name": "s", "events": ["e"], "endpoint": "http://localhost:1/hook"}
    )
    headers = {
        h.EVENT_ID: b"ev-1",
        h.SUBSCRIBER: b"s",
        **_headers(NOW_MS - 2 * HOUR_MS, 2),
    }
    await drop_to_dlq(spec, failures, lambda: NOW_MS + 5)(_task(headers), DROP)
    [(_topic, key, value, dead)] = [s for s in producer.sent if s[0] == NAMES.dlq("s")]
    assert (key, value) == (b"k", b"v")
    found = dict(dead)
    assert found[h.DLQ_REASON] == DROP_REASON.encode()
    assert found[h.DLQ_AT] == str(NOW_MS + 5).encode()
    [entry] = ErrorChain.from_json(found[h.ERRORS]).errors
    assert (entry.attempt, entry.error_type) == (2, DROP_REASON)
    assert "op@h" in entry.message
    [record] = [parse_record(s[2]) for s in producer.sent if s[0] == NAMES.tasks]
    assert record.state is TaskState.DEAD
    assert DROP_REASON in record.detail


# -- topology and CLI -------------------------------------------------------------------------


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    return load_topology(write_topology(tmp_path, minimal()))


def test_the_control_topic_is_planned_compacted_with_one_partition(topology: Topology) -> None:
    [plan] = [p for p in plan_topics(topology) if p.name == f"{topology.namespace}.control"]
    assert plan.partitions == 1
    assert plan.config["cleanup.policy"] == "compact"
    assert plan.layer == "delivery"


def test_unknown_subscriber_suggests_the_closest(topology: Topology) -> None:
    check_subscriber(topology, "indexer")
    with pytest.raises(UnknownSubscriberError, match="did you mean 'indexer'"):
        check_subscriber(topology, "indexr")


@pytest.mark.parametrize(
    "args",
    [
        ["pause", "thumbnailr"],
        ["resume", "thumbnailr"],
        ["drop", "thumbnailr", "--before", "2h"],
        ["show", "thumbnailr"],
    ],
)
def test_cli_unknown_subscriber_exits_1_naming_it_before_any_kafka(
    topology: Topology, args: list[str]
) -> None:
    # The topology's bootstrap servers answer nothing: only the name check can end this fast.
    result = CliRunner().invoke(cli, ["--topology", str(topology.source_path), "subscriber", *args])
    assert result.exit_code == 1, result.output
    assert "unknown subscriber 'thumbnailr'; did you mean 'thumbnailer'?" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--before", "last week"], "Invalid value for '--before'"),
        ([], "give exactly one of --before TIME or --clear"),
        (["--before", "2h", "--clear"], "give exactly one of --before TIME or --clear"),
    ],
)
def test_cli_drop_argument_errors_name_the_option(
    topology: Topology, args: list[str], expected: str
) -> None:
    base = ["--topology", str(topology.source_path), "subscriber", "drop", "indexer"]
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code == 2
    assert expected in result.output


def test_cli_drop_in_the_future_exits_1_naming_before(topology: Topology) -> None:
    base = ["--topology", str(topology.source_path), "subscriber", "drop", "indexer"]
    result = CliRunner().invoke(cli, [*base, "--before", "2999-01-01T00:00:00Z"])
    assert result.exit_code == 1
    assert "--before: 2999-01-01T00:00:00+00:00 is in the future" in result.output
