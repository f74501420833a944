"""The one path every failed attempt takes: retry through the delay tiers, or dead-letter.

HTTP pushes that fail and the outcome records execution sends back both end here, so both
kinds of subscriber retry and dead-letter by the same rules. A retry is the task produced to
``<ns>.accepted`` with ``msm.deliver_at`` in the future and ``msm.target`` naming the
subscriber's topic: the scheduler holds it in its delay tiers and then forwards it there, so a
retry never blocks another task. A dead letter keeps the original payload and headers with the
whole error chain. Ordered subscribers retry in place (the caller waits, the partition with
it), so this path only ever dead-letters them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline import headers as h
from pipeline.agents.base import Send
from pipeline.agents.delivery_policy import Decision, ErrorChain, ErrorEntry, Outcome, RetryPolicy
from pipeline.metrics import Metrics
from pipeline.tasks import TaskState, state_record
from pipeline.topology.subscribers import SubscriberSpec
from pipeline.topology.topics import TopicNames
from pipeline.worker.logs import Summary

log = logging.getLogger(__name__)

Future = Awaitable[object]
# (topic, key, value, headers, partition) -> the produce's delivery future

# Headers that describe one attempt; replaced when the task moves on.
_PER_ATTEMPT = frozenset({h.ERRORS, h.OUTCOME, h.RETRY_AFTER_MS})
_RETRY_DROPS = _PER_ATTEMPT | {h.ATTEMPT, h.DELIVER_AT, h.TARGET, h.TIERED_AT}
_DLQ_DROPS = _PER_ATTEMPT | {h.DLQ_REASON, h.DLQ_AT, h.TARGET, h.TIERED_AT}


@dataclass(frozen=True)
class Failed:
    """A task whose ``attempt`` failed; ``chain`` holds every error so far, this one's too."""

    key: bytes | None
    value: bytes
    headers: h.HeaderList
    attempt: int
    chain: ErrorChain

    @property
    def last_error(self) -> str:
        return describe(self.chain.errors[-1]) if self.chain.errors else "unknown error"


def describe(entry: ErrorEntry) -> str:
    what = f"HTTP {entry.status}" if entry.status is not None else entry.error_type
    return f"{what}: {entry.message}" if entry.message else what


def iso_ms(at_ms: int) -> str:
    when = datetime.fromtimestamp(at_ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_headers(
    headers: h.HeaderList, *, attempt: int, deliver_at_ms: int, target: str, chain: ErrorChain
) -> h.HeaderList:
    """The task's headers for its next ``attempt``, due at ``deliver_at_ms`` on ``target``."""
    kept = [(k, v) for k, v in headers if k not in _RETRY_DROPS]
    ours: dict[str, str | int] = {h.ATTEMPT: attempt, h.DELIVER_AT: deliver_at_ms, h.TARGET: target}
    return kept + h.encode(ours) + [(h.ERRORS, chain.to_json())]


def dead_letter_headers(
    headers: h.HeaderList, *, reason: str, at_ms: int, chain: ErrorChain
) -> h.HeaderList:
    kept = [(k, v) for k, v in headers if k not in _DLQ_DROPS]
    ours = h.encode({h.DLQ_REASON: reason, h.DLQ_AT: at_ms})
    return [*kept, (h.ERRORS, chain.to_json()), *ours]


class Failures:
    """Decides and sends; every method returns the produce futures for the caller to await
    (together with its others) before it acks the task's offset."""

    def __init__(
        self,
        names: TopicNames,
        send: Send,
        metrics: Metrics,
        *,
        clock_ms: Callable[[], int],
        rng: random.Random | None = None,
    ) -> None:
        self.names, self._send, self._metrics = names, send, metrics
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._policies: dict[str, RetryPolicy] = {}
        # One line a minute with the counts, not one per dead letter (each is DEBUG).
        self._dead_letters = Summary(log, "delivery: tasks dead-lettered")

    def policy(self, spec: SubscriberSpec) -> RetryPolicy:
        policy = self._policies.get(spec.name)
        if policy is None:
            policy = self._policies[spec.name] = RetryPolicy.for_subscriber(spec)
        return policy

    def decide(
        self,
        spec: SubscriberSpec,
        attempt: int,
        outcome: Outcome,
        retry_after: timedelta | None = None,
    ) -> Decision:
        return self.policy(spec).decide(max(1, attempt), outcome, self._rng, retry_after)

    async def handle(
        self,
        spec: SubscriberSpec,
        failed: Failed,
        outcome: Outcome,
        retry_after: timedelta | None = None,
    ) -> list[Future]:
        """Retry or dead-letter a task whose last attempt ended with ``outcome``."""
        decision = self.decide(spec, failed.attempt, outcome, retry_after)
        if decision.action == "retry" and spec.ordered:
            # Retrying through the tiers would let the key's later tasks overtake this one:
            # ordered tasks are retried in place, and only their last failure comes here.
            log.warning(
                "delivery %s: ordered task failed at attempt %d with attempts left; "
                "dead-lettered, since it cannot be retried out of order",
                spec.name,
                failed.attempt,
            )
            decision = Decision("dead_letter", reason="exhausted")
        if decision.action == "retry":
            assert decision.delay is not None
            return await self.retry(spec, failed, decision.delay)
        if decision.action == "dead_letter":
            return await self.dead_letter(spec, failed, decision.reason)
        return []

    async def retry(self, spec: SubscriberSpec, failed: Failed, delay: timedelta) -> list[Future]:
        now = self._clock_ms()
        due = now + delay // timedelta(milliseconds=1)
        headers = retry_headers(
            failed.headers,
            attempt=failed.attempt + 1,
            deliver_at_ms=due,
            target=self.names.sub(spec.name),
            chain=failed.chain,
        )
        sent = await self._send(self.names.accepted, failed.key, failed.value, headers, None)
        state = await self.state(
            spec, failed.headers, TaskState.RETRYING, failed.attempt, retry_detail(failed, due)
        )
        self._metrics.delivery_retries.labels(spec.name).inc()
        return [sent, state]

    async def retrying_in_place(
        self, spec: SubscriberSpec, failed: Failed, delay: timedelta
    ) -> Future:
        """The RETRYING record of an ordered task about to be retried where it is."""
        due = self._clock_ms() + delay // timedelta(milliseconds=1)
        self._metrics.delivery_retries.labels(spec.name).inc()
        detail = retry_detail(failed, due)
        return await self.state(spec, failed.headers, TaskState.RETRYING, failed.attempt, detail)

    async def dead_letter(self, spec: SubscriberSpec, failed: Failed, reason: str) -> list[Future]:
        now = self._clock_ms()
        headers = dead_letter_headers(failed.headers, reason=reason, at_ms=now, chain=failed.chain)
        sent = await self._send(self.names.dlq(spec.name), failed.key, failed.value, headers, None)
        detail = f"{reason} after attempt {failed.attempt}: {failed.last_error}"
        state = await self.state(spec, failed.headers, TaskState.DEAD, failed.attempt, detail)
        self._metrics.delivery_dead_letters.labels(spec.name, reason).inc()
        log.debug("delivery %s: dead-lettered (%s)", spec.name, detail)
        self._dead_letters.note(f"{spec.name} {reason}")
        return [sent, state]

    async def state(
        self,
        spec: SubscriberSpec,
        headers: h.HeaderList | Mapping[str, bytes],
        state: TaskState,
        attempt: int,
        detail: str = "",
    ) -> Future:
        values = headers if isinstance(headers, Mapping) else h.to_dict(headers)
        key, value = state_record(
            values, spec.name, state, self._clock_ms(), attempt=attempt, detail=detail
        )
        return await self._send(self.names.tasks, key, value, [], None)


def retry_detail(failed: Failed, due_ms: int) -> str:
    return f"{failed.last_error}; attempt {failed.attempt + 1} at {iso_ms(due_ms)}"
