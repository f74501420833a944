"""Retry policy: classification, back-off with jitter, Retry-After, and the error chain."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.agents.delivery_policy import (
    MAX_ENTRIES,
    MAX_MESSAGE,
    RETRY_AFTER_MAX,
    Decision,
    DeliveryPolicyError,
    ErrorChain,
    ErrorEntry,
    Outcome,
    RetryPolicy,
    classify_exception,
    classify_http,
    parse_retry_after,
)
from pipeline.errors import ConfigError, KafkaUnavailableError
from pipeline.topology.subscribers import SubscriberSpec

S = timedelta(seconds=1)
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        *((s, Outcome.SUCCESS) for s in (200, 201, 202, 204, 299)),
        *((s, Outcome.RETRIABLE) for s in (408, 429, 500, 502, 503, 504, 599)),
        *((s, Outcome.NON_RETRIABLE) for s in (400, 401, 403, 404, 409, 410, 413, 422, 499)),
        (301, Outcome.NON_RETRIABLE),  # a redirect left unfollowed: a misconfigured endpoint
    ],
)
def test_classify_http(status: int, outcome: Outcome) -> None:
    assert classify_http(status) is outcome


class PaymentDeclinedError(Exception):
    class Inner(Exception):
        pass


def test_exceptions_are_retriable_unless_declared_otherwise() -> None:
    assert classify_exception(TimeoutError()) is Outcome.RETRIABLE
    assert classify_exception(ValueError(), ["builtins.ValueError"]) is Outcome.NON_RETRIABLE
    assert classify_exception(ValueError(), ["ValueError"]) is Outcome.NON_RETRIABLE
    assert classify_exception(KeyError(), ["builtins.LookupError"]) is Outcome.NON_RETRIABLE
    assert classify_exception(ValueError(), ["builtins.KeyError"]) is Outcome.RETRIABLE
    ours = f"{__name__}.PaymentDeclinedError"
    assert classify_exception(PaymentDeclinedError(), [ours]) is Outcome.NON_RETRIABLE
    assert classify_exception(PaymentDeclinedError(), ["other.PaymentDeclinedError"]) is (
        Outcome.RETRIABLE
    )
    inner = f"{__name__}.PaymentDeclinedError.Inner"
    assert classify_exception(PaymentDeclinedError.Inner(), [inner]) is Outcome.NON_RETRIABLE


def test_msm_errors_say_whether_they_are_retriable() -> None:
    assert classify_exception(ConfigError("bad")) is Outcome.NON_RETRIABLE
    assert classify_exception(KafkaUnavailableError("down")) is Outcome.RETRIABLE


def subscriber(**retry: object) -> SubscriberSpec:
    return SubscriberSpec.model_validate(
        {
            "name": "s",
            "events": ["e"],
            "handler": "m:f",
            "retry": retry,
            "non_retriable": ["builtins.ValueError"],
        }
    )


def test_policy_from_the_topology() -> None:
    policy = RetryPolicy.for_subscriber(
        subscriber(max_attempts=3, backoff="fixed", initial="2s", max="1m")
    )
    assert policy == RetryPolicy(
        3, "fixed", 2 * S, timedelta(minutes=1), frozenset({"builtins.ValueError"})
    )
    assert policy.classify(ValueError()) is Outcome.NON_RETRIABLE
    assert RetryPolicy.for_subscriber(subscriber()) == RetryPolicy(
        non_retriable=frozenset({"builtins.ValueError"})
    )  # the topology's defaults are the policy's


def test_exhausted_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(1)
    assert policy.next_delay(1, rng) is not None
    assert policy.next_delay(2, rng) is not None
    assert policy.next_delay(3, rng) is None
    assert policy.next_delay(4, rng) is None
    assert RetryPolicy(max_attempts=1).next_delay(1, rng) is None
    with pytest.raises(DeliveryPolicyError):
        policy.next_delay(0, rng)


@given(
    attempt=st.integers(1, 999),
    initial_ms=st.integers(1, 60_000),
    factor=st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
)
def test_exponential_backoff_with_equal_jitter(
    attempt: int, initial_ms: int, factor: int, seed: int
) -> None:
    initial = timedelta(milliseconds=initial_ms)
    policy = RetryPolicy(1000, "exponential", initial, initial * factor)
    delay = policy.next_delay(attempt, random.Random(seed))
    assert delay is not None
    ceiling_ms = min(factor, 2.0 ** min(attempt - 1, 64)) * initial_ms
    delay_ms = delay / timedelta(milliseconds=1)
    assert ceiling_ms / 2 - 1 <= delay_ms <= ceiling_ms + 1  # rounded to whole milliseconds
    ms = timedelta(milliseconds=1)
    assert delay % ms == timedelta(0)


class TopOfRange(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_the_ceiling_doubles_until_the_cap() -> None:
    policy = RetryPolicy(20, "exponential", S, timedelta(seconds=30))
    top = TopOfRange()
    assert [policy.next_delay(n, top) for n in range(1, 8)] == [
        S,
        2 * S,
        4 * S,
        8 * S,
        16 * S,
        30 * S,
        30 * S,
    ]


def test_jitter_spreads_retries() -> None:
    policy = RetryPolicy(10, "exponential", 8 * S, timedelta(minutes=5))
    rng = random.Random(7)
    delays = [policy.next_delay(1, rng) for _ in range(1000)]
    seconds = [d.total_seconds() for d in delays if d is not None]
    assert min(seconds) >= 4.0
    assert max(seconds) <= 8.0
    assert len(set(seconds)) > 500
    assert 5.8 < sum(seconds) / len(seconds) < 6.2  # uniform over [4 s, 8 s]


def test_fixed_backoff_waits_exactly_initial() -> None:
    policy = RetryPolicy(5, "fixed", timedelta(milliseconds=1500), timedelta(minutes=5))
    rng = random.Random(3)
    assert {policy.next_delay(n, rng) for n in range(1, 5)} == {timedelta(milliseconds=1500)}


def test_retry_after_is_a_lower_bound_capped_at_a_day() -> None:
    policy = RetryPolicy(5, "fixed", S, timedelta(minutes=5))
    rng = random.Random(0)
    assert policy.next_delay(1, rng, retry_after=timedelta(minutes=20)) == timedelta(minutes=20)
    assert policy.next_delay(1, rng, retry_after=timedelta(milliseconds=10)) == S
    assert policy.next_delay(1, rng, retry_after=timedelta(days=30)) == RETRY_AFTER_MAX
    assert policy.next_delay(5, rng, retry_after=timedelta(minutes=1)) is None  # still exhausted


@pytest.mark.parametrize(
    ("header", "delay"),
    [
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        ("99999999999999999999", RETRY_AFTER_MAX),
        ("Tue, 04 Mar 2025 05:08:07 GMT", timedelta(minutes=2)),
        ("Tue, 04 Mar 2025 05:00:00 GMT", timedelta(0)),  # in the past: now
        ("Wed, 05 Mar 2025 05:06:07 GMT", RETRY_AFTER_MAX),
        ("Wed, 12 Mar 2025 05:06:07 GMT", RETRY_AFTER_MAX),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("١٢", None),  # digits, but not ASCII ones
    ],
)
def test_parse_retry_after(header: str, delay: timedelta | None) -> None:
    assert parse_retry_after(header, NOW) == delay


def test_decide() -> None:
    policy = RetryPolicy(2, "fixed", S, S)
    rng = random.Random(0)
    assert policy.decide(1, Outcome.SUCCESS, rng) == Decision("done")
    assert policy.decide(1, Outcome.NON_RETRIABLE, rng) == Decision(
        "dead_letter", reason="non_retriable"
    )
    assert policy.decide(1, Outcome.RETRIABLE, rng) == Decision("retry", S)
    assert policy.decide(1, Outcome.RETRIABLE, rng, 3 * S) == Decision("retry", 3 * S)
    assert policy.decide(2, Outcome.RETRIABLE, rng) == Decision("dead_letter", reason="exhausted")


def test_unusable_policies_are_refused() -> None:
    with pytest.raises(DeliveryPolicyError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(DeliveryPolicyError):
        RetryPolicy(initial=timedelta(0))
    with pytest.raises(DeliveryPolicyError):
        RetryPolicy(initial=timedelta(minutes=10), max=timedelta(minutes=5))


def test_error_chain_round_trips_through_json() -> None:
    chain = (
        ErrorChain()
        .add(ErrorEntry.from_exception(TimeoutError("no answer in 30s"), 1, NOW))
        .add(ErrorEntry(attempt=2, at=NOW + S, error_type="http", message="busy", status=503))
    )
    data = chain.to_json()
    assert json.loads(data) == {
        "total": 2,
        "errors": [
            {
                "attempt": 1,
                "at": "2025-03-04T05:06:07Z",
                "type": "builtins.TimeoutError",
                "message": "no answer in 30s",
                "status": None,
            },
            {
                "attempt": 2,
                "at": "2025-03-04T05:06:08Z",
                "type": "http",
                "message": "busy",
                "status": 503,
            },
        ],
    }
    assert ErrorChain.from_json(data) == chain
    assert ErrorChain.from_json(data.decode()) == chain


def test_error_chain_keeps_the_last_entries_and_counts_all() -> None:
    chain = ErrorChain()
    for attempt in range(1, 31):
        chain = chain.add(ErrorEntry(attempt=attempt, at=NOW, error_type="x"))
    assert chain.total == 30
    assert len(chain.errors) == MAX_ENTRIES
    assert [e.attempt for e in chain.errors] == list(range(31 - MAX_ENTRIES, 31))


def test_error_entries_are_bounded_and_in_utc() -> None:
    entry = ErrorEntry.from_exception(
        ValueError("x" * 5000),
        1,
        datetime(2025, 1, 1, 12),  # naive: read as UTC
    )
    assert len(entry.message) == MAX_MESSAGE
    assert entry.message.endswith("...")
    assert entry.at == datetime(2025, 1, 1, 12, tzinfo=UTC)
    cet = datetime.fromisoformat("2025-01-01T13:00:00+01:00")
    assert ErrorEntry(attempt=1, at=cet, error_type="x").at == entry.at


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'{"total": -1}', b'{"errors": [{"attempt": 0}]}', b'{"x": 1}', b"\xff"],
)
def test_a_broken_error_chain_is_an_msm_error(data: bytes) -> None:
    with pytest.raises(DeliveryPolicyError, match="not an error chain"):
        ErrorChain.from_json(data)
