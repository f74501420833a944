"""What execution reads from task headers and writes on done and outcome records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry, Outcome
from pipeline.agents.execution_records import (
    done_value,
    error_chain,
    outcome_headers,
    parse_done,
    task_meta,
)

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
HEADERS = [
    (h.EVENT_ID, b"ev-1"),
    (h.EVENT_TYPE, b"thing.created"),
    (h.KEY, b"k-1"),
    (h.PUBLISHED_AT, b"1735787045678"),
    (h.SUBSCRIBER, b"sub"),
    (h.ATTEMPT, b"2"),
    (h.TRACEPARENT, b"00-abc-def-01"),
    ("custom", b"x"),
]


def test_task_meta_from_headers() -> None:
    meta = task_meta(dict(HEADERS), "sub", 3)
    assert meta.task_id == "ev-1/sub"
    assert (meta.event_id, meta.event_type, meta.subscriber) == ("ev-1", "thing.created", "sub")
    assert (meta.key, meta.attempt, meta.traceparent) == ("k-1", 3, "00-abc-def-01")
    assert meta.published_at == datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert meta.deliver_at is None
    assert meta.headers["custom"] == b"x"
    with pytest.raises(TypeError):
        meta.headers["custom"] = b"y"  # type: ignore[index]


def test_task_meta_without_optional_headers() -> None:
    meta = task_meta({h.EVENT_ID: b"e"}, "s", 1)
    assert (meta.key, meta.published_at, meta.traceparent, meta.event_type) == (
        None,
        None,
        None,
        "",
    )


def test_done_value_round_trip() -> None:
    assert json.loads(done_value(123)) == {"at": 123}
    assert parse_done(done_value(123)) == 123
    for bad in (None, b"", b"[]", b'{"at": "1"}', b'{"at": true}', b"{}"):
        assert parse_done(bad) is None


def test_outcome_headers_replace_what_they_set() -> None:
    earlier = ErrorChain().add(ErrorEntry(attempt=1, at=NOW, error_type="timeout"))
    task = [*HEADERS, (h.ERRORS, earlier.to_json()), (h.OUTCOME, b"stale")]
    chain = earlier.add(ErrorEntry(attempt=2, at=NOW, error_type="builtins.ValueError"))
    out = outcome_headers(
        task,
        attempt=2,
        outcome=Outcome.RETRIABLE,
        chain=chain,
        retry_after=timedelta(seconds=1.5),
        version="canary",
    )
    names = [k for k, _ in out]
    assert len(names) == len(set(names)), "no header repeated"
    got = dict(out)
    assert got[h.OUTCOME] == b"retriable"
    assert got[h.ATTEMPT] == b"2"
    assert got[h.RETRY_AFTER_MS] == b"1500"
    assert got[h.HANDLER_VERSION] == b"canary"
    assert ErrorChain.from_json(got[h.ERRORS]).total == 2
    assert got["custom"] == b"x"
    assert got[h.EVENT_ID] == b"ev-1"


def test_outcome_headers_leave_out_what_is_unknown() -> None:
    out = dict(
        outcome_headers(
            [(h.RETRY_AFTER_MS, b"5"), (h.HANDLER_VERSION, b"stable")],
            attempt=1,
            outcome=Outcome.NON_RETRIABLE,
            chain=ErrorChain(),
            retry_after=None,
            version=None,
        )
    )
    assert h.RETRY_AFTER_MS not in out
    assert h.HANDLER_VERSION not in out
    assert out[h.OUTCOME] == b"non_retriable"


def test_error_chain_from_headers() -> None:
    assert error_chain({}) == ErrorChain()
    assert error_chain({h.ERRORS: b"not json"}) == ErrorChain()
    chain = ErrorChain().add(ErrorEntry(attempt=1, at=NOW, error_type="x"))
    assert error_chain({h.ERRORS: chain.to_json()}) == chain
