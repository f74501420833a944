"""What an HTTP push sends and how its answer (or silence) is read, without a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from pipeline import headers as h
from pipeline.agents.delivery_http import request_headers, result_for_exception, result_for_status
from pipeline.agents.delivery_policy import Outcome
from pipeline.gate.capacity import Signal

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_request_headers_name_the_task() -> None:
    headers = {
        h.EVENT_ID: b"ev-1",
        h.EVENT_TYPE: b"file.uploaded",
        h.TRACEPARENT: b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert request_headers(headers, "indexer", 3) == {
        "Content-Type": "application/json",
        "X-MSM-Event-Id": "ev-1",
        "X-MSM-Event-Type": "file.uploaded",
        "X-MSM-Task-Id": "ev-1/indexer",
        "X-MSM-Attempt": "3",
        "X-MSM-Subscriber": "indexer",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    plain = request_headers({h.EVENT_ID: b"ev-1", h.EVENT_TYPE: b"t"}, "s", 1)
    assert "traceparent" not in plain


def test_a_header_value_that_could_split_the_request_is_left_out() -> None:
    sent = request_headers(
        {h.EVENT_ID: b"e", h.EVENT_TYPE: b"t", h.TRACEPARENT: b"x\r\nY: z"}, "s", 1
    )
    assert "traceparent" not in sent


@pytest.mark.parametrize(
    ("status", "outcome", "signal"),
    [
        (200, Outcome.SUCCESS, Signal.SUCCESS),
        (204, Outcome.SUCCESS, Signal.SUCCESS),
        (400, Outcome.NON_RETRIABLE, Signal.ERROR),
        (404, Outcome.NON_RETRIABLE, Signal.ERROR),
        (408, Outcome.RETRIABLE, Signal.TIMEOUT),
        (429, Outcome.RETRIABLE, Signal.THROTTLED),
        (500, Outcome.RETRIABLE, Signal.ERROR),
        (503, Outcome.RETRIABLE, Signal.UNAVAILABLE),
        (504, Outcome.RETRIABLE, Signal.TIMEOUT),
    ],
)
def test_answers_are_classified_by_status(status: int, outcome: Outcome, signal: Signal) -> None:
    result = result_for_status(status, "Why", b"", None, attempt=2, now=NOW, seconds=0.25)
    assert (result.outcome, result.signal, result.status, result.seconds) == (
        outcome,
        signal,
        status,
        0.25,
    )
    if outcome is Outcome.SUCCESS:
        assert result.error is None
    else:
        assert result.error is not None
        assert (result.error.attempt, result.error.status, result.error.at) == (2, status, NOW)


def test_a_failed_answer_keeps_its_reason_and_body_and_honours_retry_after() -> None:
    result = result_for_status(
        429, "Too Many Requests", b" slow down \n", "7", attempt=1, now=NOW, seconds=0.1
    )
    assert result.error is not None
    assert result.error.message == "Too Many Requests: slow down"
    assert result.error.error_type == "http"
    assert result.retry_after == timedelta(seconds=7)
    dated = result_for_status(
        503, "", b"", "Tue, 04 Mar 2025 05:07:07 GMT", attempt=1, now=NOW, seconds=0.1
    )
    assert dated.retry_after == timedelta(minutes=1)
    junk = result_for_status(503, "", b"", "soon", attempt=1, now=NOW, seconds=0.1)
    assert junk.retry_after is None


def test_no_answer_is_retriable_and_a_timeout_signals_trouble() -> None:
    timeout = result_for_exception(TimeoutError(), attempt=4, now=NOW, seconds=2.0, timeout_s=2)
    assert (timeout.outcome, timeout.signal) == (Outcome.RETRIABLE, Signal.TIMEOUT)
    assert timeout.error is not None
    assert timeout.error.error_type == "builtins.TimeoutError"
    assert timeout.error.message == "no answer within 2 s"
    refused = result_for_exception(
        aiohttp.ClientConnectionError("refused"), attempt=1, now=NOW, seconds=0.0, timeout_s=2
    )
    assert (refused.outcome, refused.signal) == (Outcome.RETRIABLE, Signal.ERROR)
    assert refused.error is not None
    assert refused.error.error_type == "aiohttp.client_exceptions.ClientConnectionError"
    assert refused.error.message == "refused"
    bare = result_for_exception(
        aiohttp.ServerDisconnectedError(None), attempt=1, now=NOW, seconds=0.0, timeout_s=2
    )
    assert bare.error is not None
    assert bare.error.message
