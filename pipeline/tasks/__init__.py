"""Task state: one (event, subscriber) task's lifecycle, recorded by each layer as it acts.

A task is one event for one subscriber, named ``<event id>/<subscriber>``. Every layer that
moves a task appends a :class:`TaskRecord` (JSON) to ``<ns>.tasks``, keyed by the event id, so
all of one event's tasks share a partition and their history is read from one place. The topic
keeps history (delete policy, not compaction): ``msm task show`` prints each state change.
"""

from __future__ import annotations

from pipeline.tasks.records import (
    TaskRecord,
    TaskState,
    parse_record,
    split_task_id,
    state_record,
    task_id,
)

__all__ = ["TaskRecord", "TaskState", "parse_record", "split_task_id", "state_record", "task_id"]
