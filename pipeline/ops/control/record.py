"""One subscriber's operator state as it travels on ``<ns>.control``, and the drop rule.

The topic is compacted and keyed by subscriber name, so the latest record of each key is its
whole state: the CLI reads the current one, changes it and writes it back whole, and a worker
that starts reads the topic from the beginning to know every subscriber's state before it
dispatches anything. A tombstone (no value) means the default: delivering, nothing dropped.
Values are JSON (never pickle): any tool can read and write them, and unknown fields written
by a newer MSM are ignored, not fatal.

Drop rule (:func:`drop_applies`): a task is dropped (dead-lettered, never deleted) when its
event was published (``msm.published_at``) before the cut-off **and** it was already pending
when the operator issued the drop. "Already pending" is told by the record's timestamp on the
subscriber's queue (``sub.<s>`` for delivery, ``exec.<s>`` for execution): a record written
there after the drop is a delayed event that came due since, or a dead letter the operator
redrove (so redriving dropped tasks delivers them), and is spared, unless it is a retry of a
task that failed before (attempt > 1, not redriven): those were pending all along, waiting in a
delay tier, and are dropped when they come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline import headers as h
from pipeline.errors import MSMError

VERSION = 1
DROP_REASON = "dropped_by_operator"  # msm.dlq.reason of a dropped task


class ControlRecordError(MSMError):
    """A value on the control topic that is not a control record."""


class ControlState(BaseModel):
    """A subscriber's operator state; ``by`` and ``at_ms`` are the last change's."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = VERSION
    subscriber: str = Field(min_length=1)
    paused: bool = False
    paused_by: str = ""
    paused_at_ms: int | None = None
    drop_before_ms: int | None = None  # tasks of events published before this are dropped
    drop_by: str = ""
    drop_at_ms: int | None = None  # when the drop was issued: tasks queued later are spared
    by: str = ""
    at_ms: int | None = None

    @property
    def default(self) -> bool:
        return not self.paused and self.drop_before_ms is None

    def pause(self, by: str, at_ms: int) -> ControlState:
        update = {"paused": True, "paused_by": by, "paused_at_ms": at_ms}
        return self.model_copy(update={**update, "by": by, "at_ms": at_ms})

    def resume(self, by: str, at_ms: int) -> ControlState:
        update = {"paused": False, "paused_by": "", "paused_at_ms": None}
        return self.model_copy(update={**update, "by": by, "at_ms": at_ms})

    def drop(self, before_ms: int | None, by: str, at_ms: int) -> ControlState:
        """Drop tasks published before ``before_ms``; None clears the cut-off."""
        drop_by, drop_at = (by, at_ms) if before_ms is not None else ("", None)
        return self.model_copy(
            update={
                "drop_before_ms": before_ms,
                "drop_by": drop_by,
                "drop_at_ms": drop_at,
                "by": by,
                "at_ms": at_ms,
            }
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    def to_dict(self) -> dict[str, object]:
        """The state for ``--json``: instants also as ISO 8601 text."""
        doc: dict[str, object] = self.model_dump()
        for name in ("paused_at_ms", "drop_before_ms", "drop_at_ms", "at_ms"):
            ms = getattr(self, name)
            doc[name.removesuffix("_ms")] = iso(ms) if ms is not None else None
        return doc


def decode(key: bytes | None, value: bytes | None) -> ControlState:
    """A record of the control topic; a tombstone is the subscriber's default state."""
    if not key:
        raise ControlRecordError("control record without a key (the subscriber name)")
    try:
        subscriber = key.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlRecordError(f"control record key {key!r} is not UTF-8") from None
    if value is None:
        return ControlState(subscriber=subscriber)
    try:
        state = ControlState.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        raise ControlRecordError(
            f"control record of {subscriber!r}: {where}: {first['msg']}"
        ) from None
    if state.subscriber != subscriber:
        raise ControlRecordError(
            f"control record keyed {subscriber!r} names subscriber {state.subscriber!r}"
        )
    return state


def drop_applies(state: ControlState, headers: Mapping[str, bytes], queued_at_ms: int) -> bool:
    """Whether a task (its headers, and when it was written to the subscriber's queue) is
    dropped under ``state``; see the module docstring."""
    cutoff = state.drop_before_ms
    if cutoff is None:
        return False
    published = h.get_int(headers, h.PUBLISHED_AT)
    if published is None or published >= cutoff:
        return False
    issued = state.drop_at_ms
    if issued is None or queued_at_ms <= issued:
        return True
    retry = (h.get_int(headers, h.ATTEMPT) or 1) > 1 and h.REDRIVEN_FROM not in headers
    return retry


def drop_message(state: ControlState) -> str:
    """The error-chain message of a dropped task: who dropped what, when."""
    before = iso(state.drop_before_ms) if state.drop_before_ms is not None else "?"
    at = iso(state.drop_at_ms) if state.drop_at_ms is not None else "?"
    by = state.drop_by or "unknown"
    return f"dropped by operator {by} at {at}: published before {before}"


def iso(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(state: ControlState) -> str:
    """One line for logs."""
    parts = ["paused" if state.paused else "delivering"]
    if state.drop_before_ms is not None:
        parts.append(f"dropping tasks published before {iso(state.drop_before_ms)}")
    who = f" (by {state.by})" if state.by else ""
    return ", ".join(parts) + who
