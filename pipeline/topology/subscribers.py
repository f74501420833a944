"""Subscriber models: who wants which events, and how each must be treated.

A subscriber is either a Python ``handler`` that MSM's execution layer runs or an HTTP ``endpoint``
that the delivery layer pushes to, never both: the two paths have different failure handling.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.topology.durations import Duration, PositiveDuration, RateField, format_duration
from pipeline.topology.fields import (
    DottedName,
    EventName,
    HandlerRef,
    HttpURL,
    Text,
    Token,
    invalid,
    invalid_text,
)

__all__ = ["CanarySpec", "ConcurrencySpec", "RetrySpec", "SubscriberSpec"]

_CONFIG = ConfigDict(frozen=True, extra="forbid")


class ConcurrencySpec(BaseModel):
    """Handler invocations running at once; execution scales between ``min`` and ``max``."""

    model_config = _CONFIG

    min: int = Field(default=1, ge=1, le=1024)
    max: int = Field(default=4, ge=1, le=1024)

    @model_validator(mode="after")
    def _ordered_bounds(self) -> ConcurrencySpec:
        if self.min > self.max:
            raise invalid_text(f"min {self.min} > max {self.max}", "min <= max", "min")
        return self


class RetrySpec(BaseModel):
    """Attempts per task (the first included) and the back-off between them."""

    model_config = _CONFIG

    max_attempts: int = Field(default=5, ge=1, le=1000)
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial: PositiveDuration = timedelta(seconds=1)
    max: PositiveDuration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _ordered_bounds(self) -> RetrySpec:
        if self.initial > self.max:
            raise invalid_text(
                f"initial {format_duration(self.initial)} > max {format_duration(self.max)}",
                "initial <= max",
                "initial",
            )
        return self


class CanarySpec(BaseModel):
    """A new handler version taking ``percent`` of tasks; rolled back when its error rate (a
    fraction of its tasks, 0..1) exceeds ``error_rate_threshold``."""

    model_config = _CONFIG

    handler: HandlerRef
    percent: float = Field(default=10.0, ge=0, le=100)
    error_rate_threshold: float = Field(default=0.05, ge=0, le=1)


class SubscriberSpec(BaseModel):
    """One subscriber; ``filter`` is a CEL expression over the payload, compiled by flow control."""

    model_config = _CONFIG

    name: Token
    events: tuple[EventName, ...] = Field(min_length=1)
    filter: Text | None = None
    handler: HandlerRef | None = None
    endpoint: HttpURL | None = None
    health_check: HttpURL | None = None
    concurrency: ConcurrencySpec = ConcurrencySpec()
    max_in_flight: int = Field(default=100, ge=1)
    rate_limit: RateField | None = None
    priority: Literal["high", "normal", "low"] = "normal"
    retry: RetrySpec = RetrySpec()
    timeout: PositiveDuration = timedelta(seconds=30)
    ordered: bool = Field(default=False, strict=True)  # per-key order; a retry blocks its key
    dedup_window: Duration = timedelta(hours=1)
    non_retriable: tuple[DottedName, ...] = ()  # exception names that go straight to the DLQ
    canary: CanarySpec | None = None

    @field_validator("events", mode="after")
    @classmethod
    def _unique_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, event in enumerate(value):
            if event in value[:i]:
                raise invalid_text(f"{event!r} listed twice", "each event once", f"[{i}]")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> SubscriberSpec:
        if (self.handler is None) == (self.endpoint is None):
            found = "both 'handler' and 'endpoint'" if self.handler else "neither"
            raise invalid_text(
                found,
                "exactly one of 'handler' (run by MSM) or 'endpoint' (pushed over HTTP)",
            )
        if self.health_check is not None and self.endpoint is None:
            raise invalid(self.health_check, "no health_check without an endpoint", "health_check")
        if self.canary is not None and self.handler is None:
            raise invalid_text("a canary", "canaries only for handler subscribers", "canary")
        if self.canary is not None and self.canary.handler == self.handler:
            raise invalid(self.canary.handler, "a handler other than the subscriber's", "canary")
        return self
