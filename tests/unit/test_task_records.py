"""Task state records: their JSON form, task ids, the lifecycle `msm task show` prints, and the
partition an event's records are in."""

from __future__ import annotations

import json

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline import headers as h
from pipeline.tasks import TaskRecord, TaskState, parse_record, split_task_id, state_record, task_id
from pipeline.tasks.lifecycle import Step, format_ms, lifecycle
from pipeline.tasks.reader import murmur2, partition_for
from pipeline.tasks.records import TaskRecordError

HEADERS = {
    h.EVENT_ID: b"01J0EVENT",
    h.EVENT_TYPE: b"file.uploaded",
    h.PUBLISHED_AT: b"1700000000000",
    h.ATTEMPT: b"3",
}


def test_state_record_is_keyed_by_event_id_and_reads_the_task_headers() -> None:
    key, value = state_record(HEADERS, "thumbs", TaskState.PENDING, 1_700_000_000_500)
    assert key == b"01J0EVENT"
    record = parse_record(value)
    assert record == TaskRecord(
        event_id="01J0EVENT",
        subscriber="thumbs",
        state=TaskState.PENDING,
        attempt=3,
        at_ms=1_700_000_000_500,
        event_type="file.uploaded",
        published_at_ms=1_700_000_000_000,
        deliver_at_ms=None,
    )
    assert record.task_id == "01J0EVENT/thumbs"
    assert json.loads(value)["state"] == "pending"


def test_explicit_attempt_wins_and_attempt_defaults_to_one() -> None:
    _, value = state_record(HEADERS, "s", TaskState.RUNNING, 1, attempt=1)
    assert parse_record(value).attempt == 1
    _, value = state_record({h.EVENT_ID: b"e"}, "s", TaskState.PENDING, 1)
    record = parse_record(value)
    assert (record.attempt, record.event_type, record.published_at_ms) == (1, "", None)


def test_detail_is_capped_and_round_trips() -> None:
    _, value = state_record(HEADERS, "s", TaskState.RETRYING, 5, detail="x" * 5000)
    assert parse_record(value).detail == "x" * 1000


@pytest.mark.parametrize(
    "value", [b"", b"not json", b"[]", b'{"state": "pending"}', b'{"state": "nope"}']
)
def test_a_value_that_is_not_a_record_is_a_task_record_error(value: bytes) -> None:
    with pytest.raises(TaskRecordError):
        parse_record(value)


def test_task_ids_split_back() -> None:
    assert task_id("e1", "mailer") == "e1/mailer"
    assert split_task_id("e1/mailer") == ("e1", "mailer")
    assert split_task_id("e1") == ("e1", None)
    assert split_task_id("e1/") == ("e1", None)


def record(state: TaskState, at: int, attempt: int = 1, **extra: object) -> TaskRecord:
    fields: dict[str, object] = {"published_at_ms": 1000, **extra}
    return TaskRecord("e", "s", state, attempt, at, "t", **fields)  # type: ignore[arg-type]


def test_lifecycle_starts_with_accepted_and_scheduled_when_delayed() -> None:
    records = [
        record(TaskState.PENDING, 5000, deliver_at_ms=4000),
        record(TaskState.DISPATCHED, 5100, deliver_at_ms=4000),
        record(TaskState.RETRYING, 5200, detail="boom; next at 9000", deliver_at_ms=4000),
        record(TaskState.SUCCEEDED, 9100, attempt=2, deliver_at_ms=9000),
    ]
    assert lifecycle(records) == [
        Step("accepted", 1000),
        Step("scheduled", 4000),
        Step("pending", 5000, 1),
        Step("dispatched", 5100, 1),
        Step("retrying", 5200, 1, "boom; next at 9000"),
        Step("succeeded", 9100, 2),
    ]


def test_lifecycle_shows_dispatch_and_start_stamped_on_executions_records() -> None:
    records = [
        record(TaskState.PENDING, 1010),
        record(TaskState.RUNNING, 1030, dispatched_at_ms=1020),  # a failed attempt's record
        record(TaskState.RETRYING, 1100, detail="boom"),
        record(TaskState.DISPATCHED, 2000, attempt=2),  # delivery's, for the retry
        record(TaskState.SUCCEEDED, 2050, attempt=2, dispatched_at_ms=2001, started_at_ms=2010),
    ]
    assert lifecycle(records)[1:] == [
        Step("pending", 1010, 1),
        Step("dispatched", 1020, 1),
        Step("running", 1030, 1),
        Step("retrying", 1100, 1, "boom"),
        Step("dispatched", 2000, 2),
        Step("running", 2010, 2),
        Step("succeeded", 2050, 2),
    ], "a stamp stands in for a state only when the attempt has no record of it"


def test_stamps_survive_the_json_form_and_are_left_out_when_unset() -> None:
    stamped = record(TaskState.SUCCEEDED, 2050, dispatched_at_ms=2001, started_at_ms=2010)
    assert parse_record(stamped.to_json()) == stamped
    assert b"started_at_ms" not in record(TaskState.PENDING, 1).to_json()


def test_lifecycle_of_an_immediate_event_has_no_scheduled_step() -> None:
    steps = lifecycle([record(TaskState.PENDING, 1010, deliver_at_ms=1000)])
    assert [s.state for s in steps] == ["accepted", "pending"]
    assert lifecycle([]) == []


def test_times_print_in_utc_to_the_millisecond() -> None:
    assert format_ms(1_700_000_000_007) == "2023-11-14 22:13:20.007Z"


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # Kafka's own test vectors (clients UtilsTest.testMurmur2)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@given(st.binary(max_size=64), st.integers(1, 64))
def test_partition_matches_the_workers_producer(key: bytes, partitions: int) -> None:
    # faust produces with aiokafka's DefaultPartitioner: (murmur2 & 0x7fffffff) % n
    assert partition_for(key, partitions) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % partitions
