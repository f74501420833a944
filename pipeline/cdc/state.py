"""What ``<ns>.cdc`` holds (one compacted partition, JSON values), keyed per source:

* ``position/<source>``: the end LSN of the last transaction whose events are all in Kafka.
  Written before the replication slot is acknowledged, so after a crash between the two the
  transactions the slot sends again are recognised and skipped (no replay into Kafka).
* ``snapshot/<source>/<id>``: a snapshot job, requested by ``msm cdc snapshot`` (or at first
  start when ``snapshot.initial``), then its progress (the last key published) until done.
* ``status/<source>``: the owner's view for ``msm cdc status`` and ``msm status``: pace,
  backlog, position, updated every few seconds while the source runs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pipeline.cdc.pgoutput import format_lsn

JobState = Literal["requested", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class SnapshotJob:
    id: str
    source: str
    subscriber: str | None  # None: every subscriber of the event
    state: JobState = "requested"
    after_key: str | None = None  # the last key published (text form); None: from the start
    rows: int = 0
    requested_at_ms: int = 0
    updated_at_ms: int = 0
    error: str | None = None

    @property
    def record_key(self) -> str:
        return f"snapshot/{self.source}/{self.id}"

    def progressed(self, after_key: str | None, rows: int, now_ms: int) -> SnapshotJob:
        return replace(
            self, state="running", after_key=after_key, rows=self.rows + rows, updated_at_ms=now_ms
        )

    def finished(self, now_ms: int, error: str | None = None) -> SnapshotJob:
        return replace(self, state="failed" if error else "done", updated_at_ms=now_ms, error=error)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source: str
    pace: str  # full, slowed, paused
    factor: float
    backlog: int | None
    lsn: str | None
    slot_lag_bytes: int | None  # WAL the slot still holds: how far the source is behind
    events_total: int
    updated_at_ms: int
    error: str | None = None


@dataclass
class SourceState:
    """One source's records, as read from the topic (latest per key)."""

    lsn: int | None = None
    jobs: dict[str, SnapshotJob] = field(default_factory=dict)
    status: SourceStatus | None = None


def position_record(source: str, lsn: int, now_ms: int) -> tuple[bytes, bytes]:
    value = {"lsn": lsn, "lsn_text": format_lsn(lsn), "at_ms": now_ms}
    return f"position/{source}".encode(), _dumps(value)


def job_record(job: SnapshotJob) -> tuple[bytes, bytes]:
    return job.record_key.encode(), _dumps(asdict(job))


def status_record(status: SourceStatus) -> tuple[bytes, bytes]:
    return f"status/{status.source}".encode(), _dumps(asdict(status))


def load(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, SourceState]:
    """Every source's state from the partition's records, oldest first; junk is skipped."""
    out: dict[str, SourceState] = {}
    for raw_key, raw_value in records:
        apply(out, raw_key, raw_value)
    return out


def apply(out: dict[str, SourceState], raw_key: bytes | None, raw_value: bytes | None) -> None:
    """Fold one record into ``out`` (also used for records arriving while a source runs)."""
    if raw_key is None:
        return
    kind, _, rest = raw_key.decode("utf-8", "replace").partition("/")
    source, _, job_id = rest.partition("/")
    if not source:
        return
    state = out.setdefault(source, SourceState())
    value = _loads(raw_value)
    if kind == "snapshot" and job_id:
        if value is None:
            state.jobs.pop(job_id, None)
            return
        job = _job(value)
        if job is not None:
            state.jobs[job_id] = job
    elif kind == "position" and value is not None and isinstance(value.get("lsn"), int):
        state.lsn = value["lsn"]
    elif kind == "status" and value is not None:
        with contextlib.suppress(TypeError):  # written by another MSM version: skipped
            state.status = SourceStatus(**value)


def _job(value: dict[str, Any]) -> SnapshotJob | None:
    try:
        return SnapshotJob(**value)
    except TypeError:
        return None


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _loads(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
