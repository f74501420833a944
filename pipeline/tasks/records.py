"""The task-state record every layer writes, and its JSON form on ``<ns>.tasks``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pipeline import headers as h
from pipeline.errors import MSMError


class TaskState(StrEnum):
    """A task's lifecycle. ``accepted`` and ``scheduled`` are the event's, stamped on every task
    record as ``published_at`` and ``deliver_at`` rather than written once more per subscriber.
    Likewise a handler task's ``dispatched`` and ``running`` are stamped on execution's records
    (``dispatched_at``, ``started_at``); ``running`` gets a record of its own only when a run
    outlasts :data:`pipeline.agents.execution_task.RUNNING_RECORD_AFTER_S`."""

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    PENDING = "pending"  # fanned out to the subscriber's queue (flow control)
    DISPATCHED = "dispatched"  # sent to its target: execution topic or HTTP endpoint (delivery)
    RUNNING = "running"  # the handler started (execution)
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # attempt n failed; attempt n+1 is scheduled (delivery)
    DEAD = "dead"  # in the dead-letter topic (delivery)
    SKIPPED = "skipped"  # redelivered after it had succeeded: not run again (execution dedup)


_ENCODER = json.JSONEncoder(separators=(",", ":"))


class TaskRecordError(MSMError):
    """A value on the tasks topic is not a task record."""


@dataclass(frozen=True)
class TaskRecord:
    event_id: str
    subscriber: str
    state: TaskState
    attempt: int
    at_ms: int
    event_type: str = ""
    published_at_ms: int | None = None
    deliver_at_ms: int | None = None
    detail: str = ""  # the error of a failed attempt, the retry time, the DLQ reason, ...
    dispatched_at_ms: int | None = None  # this attempt's dispatch, when it has no record
    started_at_ms: int | None = None  # this attempt's handler start, when it has no record

    @property
    def task_id(self) -> str:
        return task_id(self.event_id, self.subscriber)

    def to_json(self) -> bytes:
        # Spelled out: dataclasses.asdict deep-copies every field, a tenth of a task's CPU.
        fields = {
            "event_id": self.event_id,
            "subscriber": self.subscriber,
            "state": self.state.value,
            "attempt": self.attempt,
            "at_ms": self.at_ms,
            "event_type": self.event_type,
            "published_at_ms": self.published_at_ms,
            "deliver_at_ms": self.deliver_at_ms,
            "detail": self.detail,
        }
        if self.dispatched_at_ms is not None:
            fields["dispatched_at_ms"] = self.dispatched_at_ms
        if self.started_at_ms is not None:
            fields["started_at_ms"] = self.started_at_ms
        return _ENCODER.encode(fields).encode()


def task_id(event_id: str, subscriber: str) -> str:
    return f"{event_id}/{subscriber}"


def split_task_id(value: str) -> tuple[str, str | None]:
    """``event_id/subscriber`` -> (event_id, subscriber); a bare event id -> (event_id, None)."""
    event_id, _, subscriber = value.partition("/")
    return event_id, subscriber or None


def state_record(
    headers: Mapping[str, bytes],
    subscriber: str,
    state: TaskState,
    at_ms: int,
    *,
    attempt: int | None = None,
    detail: str = "",
    dispatched_at_ms: int | None = None,
    started_at_ms: int | None = None,
) -> tuple[bytes, bytes]:
    """(key, value) for ``<ns>.tasks``, from the task's headers (:mod:`pipeline.headers`)."""
    event_id = h.get_str(headers, h.EVENT_ID) or ""
    record = TaskRecord(
        event_id=event_id,
        subscriber=subscriber,
        state=state,
        attempt=attempt if attempt is not None else (h.get_int(headers, h.ATTEMPT) or 1),
        at_ms=at_ms,
        event_type=h.get_str(headers, h.EVENT_TYPE) or "",
        published_at_ms=h.get_int(headers, h.PUBLISHED_AT),
        deliver_at_ms=h.get_int(headers, h.DELIVER_AT),
        detail=detail[:1000],
        dispatched_at_ms=dispatched_at_ms,
        started_at_ms=started_at_ms,
    )
    return event_id.encode(), record.to_json()


def parse_record(value: bytes) -> TaskRecord:
    try:
        data = json.loads(value)
        return TaskRecord(**{**data, "state": TaskState(data["state"])})
    except (ValueError, TypeError, KeyError) as exc:
        raise TaskRecordError(f"not a task record: {exc}") from None
