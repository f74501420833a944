"""What delivery does after a task fails: retry later, or dead-letter with the error chain.

Back-off is exponential with "equal jitter": retry n waits a random time between half and all of
``min(max, initial * 2**(n-1))``. Jitter spreads the retries of the many tasks one outage failed at
once; keeping the lower half (instead of AWS's "full jitter", which may retry at once) means a
failing subscriber really gets the back-off its owner configured, and never longer than ``max``.
Decorrelated jitter was rejected because it needs the previous delay, which would have to travel
with the task. ``fixed`` waits exactly ``initial``. A ``Retry-After`` from the subscriber is a lower
bound on the delay, itself capped at :data:`RETRY_AFTER_MAX` so one bad header cannot park a task
for a month. Delays are whole milliseconds, as in the ``msm.deliver_at`` header they become.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import MSMError
from pipeline.topology.subscribers import RetrySpec, SubscriberSpec

__all__ = [
    "RETRY_AFTER_MAX",
    "Decision",
    "DeliveryPolicyError",
    "ErrorChain",
    "ErrorEntry",
    "Outcome",
    "RetryPolicy",
    "classify_exception",
    "classify_http",
    "dotted_name",
    "parse_retry_after",
]

RETRY_AFTER_MAX = timedelta(days=1)
MAX_ENTRIES = 20  # errors kept in a chain: the first attempts' and the last ones tell the story
MAX_MESSAGE = 1000


class DeliveryPolicyError(MSMError):
    """The retry logic was called against its contract, or an error chain does not parse."""


class Outcome(StrEnum):
    SUCCESS = "success"
    RETRIABLE = "retriable"
    NON_RETRIABLE = "non_retriable"  # straight to the dead-letter topic


def classify_http(status: int) -> Outcome:
    """2xx succeed; 408, 429 and 5xx may succeed later; any other status will not."""
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status in (408, 429) or 500 <= status < 600:
        return Outcome.RETRIABLE
    return Outcome.NON_RETRIABLE


def dotted_name(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def classify_exception(exc: BaseException, non_retriable: Iterable[str] = ()) -> Outcome:
    """Non-retriable if the exception's class or a base is listed (``builtins.ValueError``, or a
    bare ``ValueError``), or if it is an MSMError that says so; retriable otherwise."""
    names = frozenset(non_retriable)
    for cls in type(exc).__mro__:
        if dotted_name(cls) in names or cls.__qualname__ in names:
            return Outcome.NON_RETRIABLE
    if isinstance(exc, MSMError) and not exc.retriable:
        return Outcome.NON_RETRIABLE
    return Outcome.RETRIABLE


def parse_retry_after(value: str, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (delay-seconds or an HTTP date) as a delay from ``now``,
    at most :data:`RETRY_AFTER_MAX`; None if it does not parse."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(RETRY_AFTER_MAX, timedelta(seconds=min(int(text), 10**9)))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # HTTP dates are GMT
    return min(RETRY_AFTER_MAX, max(timedelta(0), when - now))


@dataclass(frozen=True)
class Decision:
    """``retry`` after ``delay``, ``dead_letter`` (``reason``: non_retriable or exhausted), or
    ``done``."""

    action: Literal["done", "retry", "dead_letter"]
    delay: timedelta | None = None
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """A subscriber's retry settings; attempts count from 1, the first delivery included."""

    max_attempts: int = 5
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial: timedelta = timedelta(seconds=1)
    max: timedelta = timedelta(minutes=5)
    non_retriable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not timedelta(0) < self.initial <= self.max:
            raise DeliveryPolicyError(f"unusable retry policy: {self}")

    @classmethod
    def from_spec(cls, spec: RetrySpec, non_retriable: Iterable[str] = ()) -> RetryPolicy:
        return cls(
            spec.max_attempts, spec.backoff, spec.initial, spec.max, frozenset(non_retriable)
        )

    @classmethod
    def for_subscriber(cls, spec: SubscriberSpec) -> RetryPolicy:
        return cls.from_spec(spec.retry, spec.non_retriable)

    def next_delay(
        self, attempt: int, rng: random.Random, retry_after: timedelta | None = None
    ) -> timedelta | None:
        """The wait before the attempt after ``attempt`` (which just failed); None when that
        was the last one allowed."""
        if attempt < 1:
            raise DeliveryPolicyError(f"attempts count from 1, not {attempt}")
        if attempt >= self.max_attempts:
            return None
        if self.backoff == "fixed":
            seconds = self.initial.total_seconds()
        else:
            growth = 2.0 ** min(attempt - 1, 64)  # beyond 2**64 the cap has long been reached
            ceiling = min(self.max.total_seconds(), self.initial.total_seconds() * growth)
            seconds = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            seconds = max(seconds, min(retry_after, RETRY_AFTER_MAX).total_seconds())
        return timedelta(milliseconds=round(seconds * 1000))

    def classify(self, exc: BaseException) -> Outcome:
        return classify_exception(exc, self.non_retriable)

    def decide(
        self,
        attempt: int,
        outcome: Outcome,
        rng: random.Random,
        retry_after: timedelta | None = None,
    ) -> Decision:
        """What to do with a task whose ``attempt`` ended with ``outcome``."""
        if outcome is Outcome.SUCCESS:
            return Decision("done")
        if outcome is Outcome.NON_RETRIABLE:
            return Decision("dead_letter", reason="non_retriable")
        delay = self.next_delay(attempt, rng, retry_after)
        if delay is None:
            return Decision("dead_letter", reason="exhausted")
        return Decision("retry", delay)


class ErrorEntry(BaseModel):
    """One failed attempt: when, what was raised (dotted class name) or answered (HTTP status)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    attempt: int = Field(ge=1)
    at: datetime
    error_type: str = Field(validation_alias="type", serialization_alias="type")
    message: str = ""
    status: int | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, attempt: int, at: datetime) -> ErrorEntry:
        return cls(attempt=attempt, at=at, error_type=dotted_name(type(exc)), message=str(exc))

    @field_validator("message", mode="after")
    @classmethod
    def _short(cls, value: str) -> str:
        return value if len(value) <= MAX_MESSAGE else value[: MAX_MESSAGE - 3] + "..."

    @field_validator("at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ErrorChain(BaseModel):
    """The errors of a task's attempts, carried with each retry and into the dead-letter topic.

    Only the last :data:`MAX_ENTRIES` are kept so a chain fits a Kafka header; ``total``
    counts them all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(default=0, ge=0)
    errors: tuple[ErrorEntry, ...] = ()

    def add(self, entry: ErrorEntry) -> ErrorChain:
        return ErrorChain(total=self.total + 1, errors=(*self.errors, entry)[-MAX_ENTRIES:])

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> ErrorChain:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise DeliveryPolicyError(f"not an error chain: {exc.errors()[0]['msg']}") from None
