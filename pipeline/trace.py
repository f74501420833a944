"""W3C trace context (``traceparent``): checked and created where events enter MSM.

A publisher's valid ``traceparent`` travels unchanged from ingress to the handler, so one
event can be followed through every layer; an event that arrives without one (a raw Kafka
producer, or an invalid value, which the W3C spec says to restart) gets a fresh one at the
frontend. While a task is processed, :func:`task_context` keeps its trace id, event id and
subscriber in a context variable, which :mod:`pipeline.worker.logs` puts on every log line.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from pipeline import headers as h

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def valid(value: str | bytes | None) -> bool:
    """A traceparent MSM passes on: the version-00 layout, not version ff, no all-zero ids."""
    return trace_id(value) is not None


def trace_id(value: str | bytes | None) -> str | None:
    """The 32-hex trace id of a valid traceparent, else None."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    match = _TRACEPARENT.fullmatch(text)
    if match is None or text.startswith("ff"):
        return None
    if match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return None
    return match.group(1)


def new_traceparent() -> str:
    """A new sampled trace: random trace and span ids (never all zero)."""
    trace = secrets.token_hex(16)
    span = secrets.token_hex(8)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:  # pragma: no cover - 2**-64
        return new_traceparent()
    return f"00-{trace}-{span}-01"


@dataclass(frozen=True)
class LogContext:
    trace_id: str | None = None
    event_id: str | None = None
    subscriber: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("msm_log_context", default=None)


def current_context() -> LogContext | None:
    return _current.get()


@contextlib.contextmanager
def task_context(headers: Mapping[str, bytes], subscriber: str | None = None) -> Iterator[None]:
    """Log lines inside name this record's trace id, event id and subscriber."""
    token = _current.set(context_of(headers, subscriber))
    try:
        yield
    finally:
        _current.reset(token)


def context_of(headers: Mapping[str, bytes], subscriber: str | None = None) -> LogContext:
    return LogContext(
        trace_id=trace_id(headers.get(h.TRACEPARENT)),
        event_id=h.get_str(headers, h.EVENT_ID),
        subscriber=subscriber or h.get_str(headers, h.SUBSCRIBER),
    )
