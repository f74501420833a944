"""The worker's log lines: human-readable or JSON, carrying the task being processed.

Why a context variable: a line logged while one task is processed (by MSM or by the handler's
own ``logging`` calls) should name that task's trace, event and subscriber, without every call
site passing them. :func:`pipeline.trace.task_context` sets them for the current asyncio task
(each gate task runs in its own, and sync handlers' threads get a copy), and
:class:`ContextFilter`, on the handler, copies them onto every record.

Formats (``msm worker --log-format``, ``MSM_LOG_FORMAT``): ``text`` (default) for people,
``json`` (one object per line: ts, level, logger, message, plus trace_id, event_id, subscriber
when set, exc with a traceback) for log pipelines.

Per-event conditions that still matter in aggregate (records rejected at ingress) go through
:class:`Summary`: one line per interval with the count, not one per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.trace import current_context

FORMATS = ("text", "json")
CONTEXT_FIELDS = ("trace_id", "event_id", "subscriber")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Puts the current :class:`LogContext` on each record (None where unset); never drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_context()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(ctx, name) if ctx is not None else None)
        return True


def _context_items(record: logging.LogRecord) -> list[tuple[str, str]]:
    return [(n, str(v)) for n in CONTEXT_FIELDS if (v := getattr(record, n, None)) is not None]


class TextFormatter(logging.Formatter):
    """``2025-01-01 12:00:00,123 INFO logger: message [trace_id=... subscriber=...]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        items = _context_items(record)
        if not items:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [{' '.join(f'{k}={v}' for k, v in items)}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; newlines in messages and tracebacks are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(_context_items(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"log format {log_format!r}, expected one of: {', '.join(FORMATS)}")


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``dictConfig`` for the worker (Faust's ``logging_config``): one stderr handler with
    the chosen formatter and the context filter, at ``level``."""
    formatter(log_format)  # refuse an unknown format before anything starts
    factory = JsonFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"msm": {"()": f"{__name__}.{factory.__name__}"}},
        "filters": {"msm_context": {"()": f"{__name__}.ContextFilter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "msm",
                "filters": ["msm_context"],
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
    }


class Summary:
    """Counts per-event conditions and logs them at most once per ``every_s``.

    ``note(kind)`` counts; the first note after a quiet interval logs at once (an operator
    sees a problem start), later ones are folded into one line at the end of the interval
    (a timer on the running loop, if any; else the next note past the interval logs them).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every_s: float = 60.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.what, self.every_s, self.level = logger, what, every_s, level
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._last: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def note(self, kind: str, n: int = 1) -> None:
        self._counts[kind] += n
        now = self._clock()
        if self._last is None or now - self._last >= self.every_s:
            self.flush(now)
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next note flushes
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._last + self.every_s - now, self.flush)

    def flush(self, now: float | None = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._counts:
            return
        since = "" if self._last is None else f" in the last {self.every_s:g} s"
        total = sum(self._counts.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self._counts.items()))
        self.logger.log(self.level, "%s: %d%s (%s)", self.what, total, since, kinds)
        self._counts.clear()
        self._last = self._clock() if now is None else now
