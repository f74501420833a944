"""Worker log lines: JSON and text formats, the task context on them, summaries, traceparent."""

from __future__ import annotations

import json
import logging

import pytest

from pipeline import headers as h
from pipeline import trace
from pipeline.trace import current_context, task_context
from pipeline.worker.logs import (
    ContextFilter,
    JsonFormatter,
    Summary,
    TextFormatter,
    formatter,
    logging_config,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADERS = {h.TRACEPARENT: TRACEPARENT.encode(), h.EVENT_ID: b"evt-1", h.SUBSCRIBER: b"thumbs"}


def _record(message: str = "hello %s", *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            info = sys.exc_info()
    record = logging.LogRecord("pipeline.x", logging.INFO, __file__, 1, message, args, info)
    ContextFilter().filter(record)
    return record


def test_a_json_line_parses_and_carries_the_task_context() -> None:
    with task_context(HEADERS):
        line = JsonFormatter().format(_record("hello %s", "world"))
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "INFO"
    assert doc["logger"] == "pipeline.x"
    assert doc["message"] == "hello world"
    assert doc["ts"].endswith("+00:00")
    assert doc["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert doc["event_id"] == "evt-1"
    assert doc["subscriber"] == "thumbs"


def test_outside_a_task_json_has_no_context_and_keeps_tracebacks_on_one_line() -> None:
    doc = json.loads(JsonFormatter().format(_record("failed", exc=True)))
    assert "trace_id" not in doc
    assert "subscriber" not in doc
    assert "ValueError: boom" in doc["exc"]


def test_text_lines_end_with_the_context_before_a_traceback() -> None:
    with task_context(HEADERS, "other"):
        line = TextFormatter().format(_record("failed", exc=True))
    first, _, rest = line.partition("\n")
    assert first.endswith(
        "INFO pipeline.x: failed [trace_id=4bf92f3577b34da6a3ce929d0e0e4736 event_id=evt-1 "
        "subscriber=other]"
    )
    assert "ValueError: boom" in rest
    assert TextFormatter().format(_record("plain")).endswith("INFO pipeline.x: plain")


def test_the_context_is_reset_after_the_task() -> None:
    with task_context(HEADERS):
        assert current_context() is not None
    assert current_context() is None


def test_logging_config_picks_the_formatter_and_refuses_unknown_formats() -> None:
    config = logging_config("json", "INFO")
    assert config["formatters"]["msm"]["()"].endswith("JsonFormatter")
    assert config["handlers"]["default"]["filters"] == ["msm_context"]
    assert isinstance(formatter("text"), TextFormatter)
    with pytest.raises(ValueError, match="xml"):
        logging_config("xml", "INFO")


def test_a_summary_logs_the_first_at_once_then_counts_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    summary = Summary(logging.getLogger("t.summary"), "rejected", every_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "t.summary"):
        summary.note("invalid_json")
        for _ in range(5):
            summary.note("oversize")
        assert [r.getMessage() for r in caplog.records] == ["rejected: 1 (invalid_json 1)"]
        now[0] = 61.0
        summary.note("oversize")
    assert caplog.records[-1].getMessage() == "rejected: 6 in the last 60 s (oversize 6)"
    assert caplog.records[-1].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (TRACEPARENT, True),
        (TRACEPARENT.encode(), True),
        ("00-abc-def-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        (None, False),
    ],
)
def test_traceparents_are_checked(value: str | bytes | None, ok: bool) -> None:
    assert trace.valid(value) is ok


def test_new_traceparents_are_valid_and_distinct() -> None:
    made = {trace.new_traceparent() for _ in range(20)}
    assert len(made) == 20
    assert all(trace.valid(t) for t in made)
