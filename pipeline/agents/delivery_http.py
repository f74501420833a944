"""One HTTP push of a task to its endpoint, and what came of it.

Every way a push can end is folded into a :class:`PushResult`: an answer (classified by status:
2xx success, 408/429/5xx retriable, other statuses not), a timeout (retriable: the endpoint may
have done the work, so endpoints must be idempotent, keyed by ``X-MSM-Task-Id``) or a connection
error (retriable). Nothing but cancellation escapes, so a bad endpoint never takes the worker
down. The result also carries the capacity signal (:class:`~pipeline.gate.capacity.Signal`) the
subscriber's AIMD limit feeds on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from pipeline import headers as h
from pipeline.agents.delivery_policy import (
    ErrorEntry,
    Outcome,
    classify_http,
    dotted_name,
    parse_retry_after,
)
from pipeline.gate.capacity import Signal, signal_for_http
from pipeline.tasks import task_id

log = logging.getLogger(__name__)

ERROR_BODY_BYTES = 512  # of a failed answer's body, kept in the error chain
HEALTH_TIMEOUT_S = 2.0
Now = Callable[[], datetime]


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    signal: Signal
    seconds: float
    status: int | None = None
    error: ErrorEntry | None = None  # None on success
    retry_after: timedelta | None = None


def request_headers(headers: Mapping[str, bytes], subscriber: str, attempt: int) -> dict[str, str]:
    """What the endpoint learns about the task besides its payload."""
    event_id = h.get_str(headers, h.EVENT_ID) or ""
    out = {
        "Content-Type": "application/json",
        "X-MSM-Event-Id": event_id,
        "X-MSM-Event-Type": h.get_str(headers, h.EVENT_TYPE) or "",
        "X-MSM-Task-Id": task_id(event_id, subscriber),
        "X-MSM-Attempt": str(attempt),
        "X-MSM-Subscriber": subscriber,
    }
    trace = h.get_str(headers, h.TRACEPARENT)
    if trace:
        out["traceparent"] = trace
    return {k: v for k, v in out.items() if v.isprintable()}


def result_for_status(
    status: int,
    reason: str,
    body: bytes,
    retry_after: str | None,
    *,
    attempt: int,
    now: datetime,
    seconds: float,
) -> PushResult:
    outcome = classify_http(status)
    signal = signal_for_http(status)
    if outcome is Outcome.SUCCESS:
        return PushResult(outcome, signal, seconds, status)
    text = body.decode("utf-8", "replace").strip()
    message = f"{reason}: {text}" if reason and text else reason or text
    error = ErrorEntry(attempt=attempt, at=now, error_type="http", message=message, status=status)
    delay = parse_retry_after(retry_after, now) if retry_after else None
    return PushResult(outcome, signal, seconds, status, error, delay)


def result_for_exception(
    exc: BaseException, *, attempt: int, now: datetime, seconds: float, timeout_s: float
) -> PushResult:
    """A push that got no answer: timed out, refused, reset, ... All may work next time."""
    if isinstance(exc, TimeoutError):
        error = ErrorEntry(
            attempt=attempt,
            at=now,
            error_type=dotted_name(TimeoutError),
            message=f"no answer within {timeout_s:g} s",
        )
        return PushResult(Outcome.RETRIABLE, Signal.TIMEOUT, seconds, error=error)
    error = ErrorEntry.from_exception(exc, attempt, now)
    if not error.message:
        error = error.model_copy(update={"message": repr(exc)})
    return PushResult(Outcome.RETRIABLE, Signal.ERROR, seconds, error=error)


async def push(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout_s: float,
    attempt: int,
    now: Now,
) -> PushResult:
    """POST ``body`` to ``url`` within ``timeout_s``; never raises but for cancellation."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=body, headers=dict(headers)) as response:
                ok = 200 <= response.status < 300
                data = await (response.read() if ok else response.content.read(ERROR_BODY_BYTES))
                return result_for_status(
                    response.status,
                    response.reason or "",
                    data,
                    response.headers.get("Retry-After"),
                    attempt=attempt,
                    now=now(),
                    seconds=time.monotonic() - started,
                )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure to get an answer is the endpoint's, not ours
        return result_for_exception(
            exc,
            attempt=attempt,
            now=now(),
            seconds=time.monotonic() - started,
            timeout_s=timeout_s,
        )


async def probe(
    session: aiohttp.ClientSession, url: str, timeout_s: float = HEALTH_TIMEOUT_S
) -> bool:
    """A health check: GET ``url`` answers 2xx within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url) as response:
                await response.read()
                return 200 <= response.status < 300
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("health check %s failed: %r", url, exc)
        return False


class Session:
    """The worker's one aiohttp session (connection pool), opened on first use inside the
    running loop and closed when the worker stops. Its connector has no connection limit of
    its own: each subscriber's gate already bounds its requests in flight."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def get(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the worker is stopping: its HTTP session is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None),  # each request sets its own
            )
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
