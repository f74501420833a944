"""A task's lifecycle as ``msm task show`` prints it, from its records on ``<ns>.tasks``.

``accepted`` and ``scheduled`` are the event's (stamped on every record as published_at and
deliver_at), so they are derived from the first record rather than stored once more per
subscriber. A handler task's ``dispatched`` and ``running`` are stamped by execution on the
attempt's records (dispatched_at, started_at) unless they have records of their own; every
other state change is one record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.tasks.records import TaskRecord, TaskState


@dataclass(frozen=True)
class Step:
    state: str
    at_ms: int
    attempt: int | None = None
    detail: str = ""


def lifecycle(records: Sequence[TaskRecord]) -> list[Step]:
    """accepted (published_at), scheduled (deliver_at, when later), then each record's state."""
    if not records:
        return []
    first = records[0]
    steps: list[Step] = []
    published = next((r.published_at_ms for r in records if r.published_at_ms is not None), None)
    if published is not None:
        steps.append(Step(TaskState.ACCEPTED.value, published))
    deliver = first.deliver_at_ms
    if deliver is not None and (published is None or deliver > published):
        steps.append(Step(TaskState.SCHEDULED.value, deliver))
    recorded = {(r.state, r.attempt) for r in records}
    for r in records:
        for state, at in (
            (TaskState.DISPATCHED, r.dispatched_at_ms),
            (TaskState.RUNNING, r.started_at_ms),
        ):
            if at is not None and (state, r.attempt) not in recorded:
                recorded.add((state, r.attempt))
                steps.append(Step(state.value, at, r.attempt))
        steps.append(Step(r.state.value, r.at_ms, r.attempt, r.detail))
    return steps


def format_ms(at_ms: int) -> str:
    """UTC, to the millisecond: ``2025-01-02 03:04:05.678Z``."""
    at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at_ms % 1000:03d}Z"
