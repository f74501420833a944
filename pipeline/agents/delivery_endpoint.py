"""Delivery to the two kinds of target: an HTTP endpoint, or MSM's execution workers.

Both are the ``process`` of a subscriber's gate :class:`~pipeline.gate.pump.Pump`: called once
the subscriber's limits let a task go, returning once everything the task caused (the target's
record or answer, task-state records, a retry or a dead letter) is on Kafka, so that the gate may
then ack its offset. Task failures are recorded, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiohttp

from pipeline import headers as h
from pipeline.agents.base import Send
from pipeline.agents.delivery_failures import Failed, Failures, Future
from pipeline.agents.delivery_http import (
    Now,
    PushResult,
    Session,
    push,
    request_headers,
    result_for_exception,
)
from pipeline.agents.delivery_json import PayloadError, PayloadJson
from pipeline.agents.delivery_policy import (
    DeliveryPolicyError,
    ErrorChain,
    ErrorEntry,
    Outcome,
)
from pipeline.gate.capacity import Aimd, Signal
from pipeline.gate.pump import Pump, Task
from pipeline.metrics import Metrics
from pipeline.tasks import TaskState
from pipeline.topology.subscribers import SubscriberSpec

log = logging.getLogger(__name__)

RETRY_AFTER = "retry-after"  # the pump's hold while an endpoint asked to be left alone
# Answers whose Retry-After speaks for the whole endpoint (RFC 9110: unavailable, or this
# client sends too much), not for one request.
_BACK_OFF = frozenset({Signal.THROTTLED, Signal.UNAVAILABLE})


class Pusher(Protocol):
    """:func:`~pipeline.agents.delivery_http.push`'s signature (tests drive it by script)."""

    async def __call__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float,
        attempt: int,
        now: Now,
    ) -> PushResult: ...


def with_first_attempt(headers: h.HeaderList, now_ms: int) -> h.HeaderList:
    """The task's headers, stamped with its first dispatch time unless an attempt before did."""
    if any(k == h.FIRST_ATTEMPT_AT for k, _ in headers):
        return headers
    return [*headers, (h.FIRST_ATTEMPT_AT, str(now_ms).encode())]


def next_attempt_headers(headers: h.HeaderList, attempt: int, chain: ErrorChain) -> h.HeaderList:
    """Headers of an ordered task retried in place: next attempt number, errors so far."""
    kept = [(k, v) for k, v in headers if k not in (h.ATTEMPT, h.ERRORS)]
    return [*kept, (h.ATTEMPT, str(attempt).encode()), (h.ERRORS, chain.to_json())]


def read_chain(headers: h.HeaderList, subscriber: str) -> ErrorChain:
    raw = h.to_dict(headers).get(h.ERRORS)
    if raw is None:
        return ErrorChain()
    try:
        return ErrorChain.from_json(raw)
    except DeliveryPolicyError as exc:  # the task still goes on; only its history is lost
        log.warning("delivery %s: unreadable %s header dropped: %s", subscriber, h.ERRORS, exc)
        return ErrorChain()


def handler_process(
    topic: str, send: Send, clock_ms: Callable[[], int]
) -> Callable[[Task], Awaitable[None]]:
    """Hand the task to execution through ``<ns>.exec.<s>``, payload and headers as they are.

    No ``dispatched`` record: execution stamps the exec record's timestamp on its own records
    as the dispatch time (see :class:`~pipeline.tasks.TaskState`)."""

    async def process(task: Task) -> None:
        headers = with_first_attempt(task.header_list, clock_ms())
        await (await send(topic, task.key, task.value, headers, None))

    return process


class EndpointDelivery:
    """Pushes one subscriber's tasks to its endpoint; ``pump`` is its gate, whose adaptive limit
    follows the endpoint's health (AIMD), and which a 429 or 503 with ``Retry-After`` holds
    until then: the backlog waits in Kafka and an outage costs only the tasks in flight an
    attempt, where dispatching on would burn every task's attempts against a closed door."""

    def __init__(
        self,
        spec: SubscriberSpec,
        failures: Failures,
        payloads: PayloadJson,
        session: Session,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        pusher: Pusher = push,
    ) -> None:
        assert spec.endpoint is not None
        self.spec, self.url = spec, str(spec.endpoint)
        self._failures, self._payloads, self._session = failures, payloads, session
        self._clock_ms, self._push = clock_ms, pusher
        self._timeout_s = spec.timeout.total_seconds()
        self.aimd = Aimd(spec.max_in_flight)
        self.pump: Pump | None = None
        name = spec.name
        self._outcomes = {o: metrics.delivery_outcomes.labels(name, o.value) for o in Outcome}
        self._http_seconds = metrics.delivery_http_seconds.labels(name)
        self._end_to_end = metrics.end_to_end_seconds.labels(name)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock_ms() / 1000, UTC)

    async def process(self, task: Task) -> None:
        headers = with_first_attempt(task.header_list, self._clock_ms())
        attempt = h.get_int(task.headers, h.ATTEMPT) or 1
        chain = read_chain(headers, self.spec.name)
        try:
            body = self._payloads.body(task.headers, task.value)
        except PayloadError as exc:  # no attempt can deliver it
            error = ErrorEntry.from_exception(exc, attempt, self.now())
            failed = Failed(task.key, task.value, headers, attempt, chain.add(error))
            reason = Outcome.NON_RETRIABLE.value
            await asyncio.gather(*await self._failures.dead_letter(self.spec, failed, reason))
            return
        while True:
            pending: list[Future] = []
            result = await self._attempt(task, headers, attempt, body, pending)
            if result.outcome is Outcome.SUCCESS:
                break
            assert result.error is not None
            chain = chain.add(result.error)
            failed = Failed(task.key, task.value, headers, attempt, chain)
            if not self.spec.ordered:
                pending += await self._failures.handle(
                    self.spec, failed, result.outcome, result.retry_after
                )
                break
            decision = self._failures.decide(self.spec, attempt, result.outcome, result.retry_after)
            if decision.action != "retry" or decision.delay is None:
                pending += await self._failures.dead_letter(self.spec, failed, decision.reason)
                break
            delay = decision.delay
            pending.append(await self._failures.retrying_in_place(self.spec, failed, delay))
            await asyncio.gather(*pending)
            pending = []
            if not await self._wait_to_retry(task, delay.total_seconds()):
                log.info(
                    "delivery %s: %s[%d]@%d revoked while retrying in place",
                    self.spec.name,
                    *task.tp,
                    task.offset,
                )
                return  # never acked: the partition's new owner delivers it
            attempt += 1
            headers = next_attempt_headers(headers, attempt, chain)
        await asyncio.gather(*pending)

    async def _wait_to_retry(self, task: Task, seconds: float) -> bool:
        """The back-off before an in-place retry, held while the target is unhealthy; False
        once the partition is revoked."""
        if self.pump is None:
            await asyncio.sleep(seconds)
            return True
        return await self.pump.wait_to_retry(task.tp, seconds)

    async def _attempt(
        self, task: Task, headers: h.HeaderList, attempt: int, body: bytes, pending: list[Future]
    ) -> PushResult:
        values = h.to_dict(headers)
        spec, state = self.spec, self._failures.state
        pending.append(await state(spec, values, TaskState.DISPATCHED, attempt))
        try:
            session = self._session.get()
        except RuntimeError as exc:  # stopping: the attempt fails, the task is retried later
            return result_for_exception(
                exc, attempt=attempt, now=self.now(), seconds=0.0, timeout_s=self._timeout_s
            )
        result = await self._push(
            session,
            self.url,
            body,
            request_headers(values, spec.name, attempt),
            timeout_s=self._timeout_s,
            attempt=attempt,
            now=self.now,
        )
        self._observe(result)
        if result.outcome is Outcome.SUCCESS:
            pending.append(await state(spec, values, TaskState.SUCCEEDED, attempt))
            published = h.get_int(values, h.PUBLISHED_AT)
            if published is not None:
                self._end_to_end.observe(max(0, self._clock_ms() - published) / 1000)
        return result

    def _observe(self, result: PushResult) -> None:
        self._outcomes[result.outcome].inc()
        self._http_seconds.observe(result.seconds)
        if self.pump is not None:
            # The limit never stays above what the gate allows anyway (this worker's share).
            self.aimd.limit = min(self.aimd.limit, self.pump.limit)
            self.pump.adaptive = self.aimd.record(result.signal)
            if result.retry_after is not None and result.signal in _BACK_OFF:
                self._back_off(self.pump, result.retry_after, result.status)

    def _back_off(self, pump: Pump, retry_after: timedelta, status: int | None) -> None:
        """Hold every task until the endpoint's ``Retry-After``, at most the subscriber's
        longest retry back-off (so one bad header cannot park it for a day)."""
        seconds = min(retry_after, self.spec.retry.max).total_seconds()
        if pump.hold_for(RETRY_AFTER, seconds):
            log.info(
                "delivery %s: endpoint answered %s with Retry-After: deliveries paused %g s",
                self.spec.name,
                status,
                seconds,
            )
