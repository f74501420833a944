"""What execution reads from a task record and writes about it: pure functions, no Kafka.

* :func:`task_meta`: the handler's :class:`~pipeline.handler.TaskMeta`, from the task's headers;
* :func:`done_value` / :func:`parse_done`: the ``<ns>.done.<s>`` value, ``{"at": ms}``;
* :func:`outcome_headers`: a failed attempt's record on ``<ns>.outcomes``: the task's headers with
  the attempt, outcome, error chain, least retry delay and handler version set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from pipeline import headers as h
from pipeline.agents.delivery_policy import DeliveryPolicyError, ErrorChain, Outcome
from pipeline.handler import TaskMeta
from pipeline.tasks import task_id

__all__ = ["done_value", "error_chain", "outcome_headers", "parse_done", "task_meta"]

log = logging.getLogger(__name__)

# Headers an outcome record sets; copies from the task are replaced, not repeated.
_OUTCOME_HEADERS = frozenset({h.ATTEMPT, h.OUTCOME, h.ERRORS, h.RETRY_AFTER_MS, h.HANDLER_VERSION})


def _instant(headers: Mapping[str, bytes], name: str) -> datetime | None:
    ms = h.get_int(headers, name)
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def task_meta(headers: Mapping[str, bytes], subscriber: str, attempt: int) -> TaskMeta:
    event_id = h.get_str(headers, h.EVENT_ID) or ""
    return TaskMeta(
        task_id=task_id(event_id, subscriber),
        event_id=event_id,
        event_type=h.get_str(headers, h.EVENT_TYPE) or "",
        subscriber=subscriber,
        key=h.get_str(headers, h.KEY),
        attempt=attempt,
        published_at=_instant(headers, h.PUBLISHED_AT),
        deliver_at=_instant(headers, h.DELIVER_AT),
        traceparent=h.get_str(headers, h.TRACEPARENT),
        headers=MappingProxyType(dict(headers)),
    )


def done_value(at_ms: int) -> bytes:
    return json.dumps({"at": at_ms}, separators=(",", ":")).encode()


def parse_done(value: bytes | None) -> int | None:
    """The finish time in a done record; None for a tombstone or a value that is not one."""
    if value is None:
        return None
    try:
        at = json.loads(value)["at"]
    except (ValueError, TypeError, KeyError):
        return None
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def error_chain(headers: Mapping[str, bytes]) -> ErrorChain:
    """The task's earlier errors; an unreadable chain starts over rather than fail the task."""
    raw = headers.get(h.ERRORS)
    if raw is None:
        return ErrorChain()
    try:
        return ErrorChain.from_json(raw)
    except DeliveryPolicyError as exc:
        log.warning("execution: ignoring an unreadable %s header: %s", h.ERRORS, exc)
        return ErrorChain()


def outcome_headers(
    task_headers: Sequence[tuple[str, bytes]],
    *,
    attempt: int,
    outcome: Outcome,
    chain: ErrorChain,
    retry_after: timedelta | None,
    version: str | None,
) -> h.HeaderList:
    out = [(k, v) for k, v in task_headers if k not in _OUTCOME_HEADERS]
    out.append((h.ATTEMPT, str(attempt).encode()))
    out.append((h.OUTCOME, str(outcome).encode()))
    out.append((h.ERRORS, chain.to_json()))
    if retry_after is not None:
        out.append((h.RETRY_AFTER_MS, str(retry_after // timedelta(milliseconds=1)).encode()))
    if version is not None:
        out.append((h.HANDLER_VERSION, version.encode()))
    return out
