"""What a subscriber's handler receives, and the exceptions it raises to steer its task.

A handler is ``handler(payload, meta)``, async or sync (sync ones run in a thread pool):
``payload`` is the event decoded with its type's current schema, ``meta`` a :class:`TaskMeta`.
Returning means success. Raising :class:`Retry` asks for another attempt (after at least
``delay``); raising :class:`DeadLetter` (or an exception the subscriber lists as
``non_retriable``) sends the task to the dead-letter topic at once; anything else is retried
by the subscriber's retry policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.errors import MSMError

__all__ = ["DeadLetter", "Retry", "TaskMeta"]


@dataclass(frozen=True)
class TaskMeta:
    """One task (one event for one subscriber) as its handler sees it.

    ``attempt`` counts from 1; ``headers`` are the task's Kafka headers, read-only.
    """

    task_id: str  # "<event id>/<subscriber>", stable across retries and redeliveries
    event_id: str
    event_type: str
    subscriber: str
    key: str | None
    attempt: int
    published_at: datetime | None
    deliver_at: datetime | None
    traceparent: str | None
    headers: Mapping[str, bytes]


class Retry(MSMError):
    """Fail this attempt and try again, after at least ``delay`` (seconds or a timedelta) if
    given; the subscriber's back-off still applies, and its ``max_attempts`` still ends it."""

    retriable = True

    def __init__(self, delay: timedelta | float | None = None, message: str = "") -> None:
        if isinstance(delay, int | float):
            delay = timedelta(seconds=delay)
        if delay is not None and delay < timedelta(0):
            raise ValueError(f"a retry delay is not negative: {delay}")
        self.delay: timedelta | None = delay
        super().__init__(message or ("retry requested" + (f" after {delay}" if delay else "")))


class DeadLetter(MSMError):
    """This task can never succeed: dead-letter it now, without further attempts."""

    retriable = False

    def __init__(self, message: str = "dead-lettered by the handler") -> None:
        super().__init__(message)
