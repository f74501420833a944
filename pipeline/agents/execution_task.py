"""One subscriber's task processing: dedup, run the handler, record the result.

:meth:`Executor.process` is the gate's ``process``: it never raises for a task's failure (a
raise would crash the worker). Every record it writes is acknowledged before it returns, so
the gate acks the task's offset only once its result is on Kafka:

* done before: ``skipped`` state (see :mod:`execution_dedup`);
* running: a ``running`` state record only for a run that outlasts :data:`RUNNING_RECORD_AFTER_S`
  or fails; a quick success stamps its start and dispatch times on its ``succeeded`` record;
* success: the done record, then ``succeeded`` state;
* failure: an outcome record for delivery, which retries or dead-letters the task. An ordered
  subscriber retries in place instead (``retrying`` state, sleep the back-off, run again), so
  later tasks of its partition wait, and sends the outcome only when the policy gives up, with
  ``msm.attempt`` = the last attempt so delivery dead-letters it. If its partition is revoked
  meanwhile, it stops retrying: the partition's new owner has the task again.

Two copies of one task in this worker (a redelivery while the first still runs) do not run
side by side: the second waits for the first and then checks the done set.

Each handler run's result also feeds :attr:`Executor.backoff` (set once the gate exists), which
lowers the gate's limit while the handler times out or asks for retries (see
:mod:`execution_backoff`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline import headers as h
from pipeline.agents.base import Send
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry, Outcome, RetryPolicy
from pipeline.agents.execution_backoff import Backoff, signal_for
from pipeline.agents.execution_canary import Canary, Version
from pipeline.agents.execution_dedup import DoneSet
from pipeline.agents.execution_handlers import Handler, HandlerTimeout, Runner
from pipeline.agents.execution_records import (
    done_value,
    error_chain,
    outcome_headers,
    task_meta,
)
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.gate.pump import Task
from pipeline.handler import Retry
from pipeline.metrics import Metrics
from pipeline.tasks import TaskState, state_record, task_id
from pipeline.topology.subscribers import SubscriberSpec
from pipeline.topology.topics import TopicNames

__all__ = ["Executor", "Send"]

log = logging.getLogger(__name__)
# A handler run that lasts longer gets a ``running`` record while it runs (see _Start).
RUNNING_RECORD_AFTER_S = 0.2


class _Start:
    """One attempt's start. Its ``running`` record is written only if the run outlasts
    :data:`RUNNING_RECORD_AFTER_S` or fails; otherwise the start (and the dispatch time) is
    stamped on the ``succeeded`` record, which saves two records per task (see TaskState)."""

    def __init__(
        self,
        started_at_ms: int,
        dispatched_at_ms: int | None,
        record: Callable[[_Start], Awaitable[None]],
    ) -> None:
        self.started_at_ms, self.dispatched_at_ms = started_at_ms, dispatched_at_ms
        self._record = record
        self._sent: asyncio.Future[None] | None = None
        self._next: _Start | None = None
        self._timer = asyncio.get_running_loop().call_later(RUNNING_RECORD_AFTER_S, self._fire)

    @property
    def recorded(self) -> bool:
        return self._sent is not None

    def _fire(self) -> None:
        if self._sent is None:
            self._sent = asyncio.ensure_future(self._record(self))

    def cancel(self) -> None:
        self._timer.cancel()
        if self._next is not None:
            self._next.cancel()

    def next(self, following: _Start) -> _Start:
        """The next attempt's start, cancelled along with this one."""
        self._next = following
        return following

    async def settled(self) -> None:
        """No late record from now on; one already on its way is acknowledged first, so the
        attempt's records stay in order."""
        self._timer.cancel()
        if self._sent is not None:
            await self._sent

    async def record_now(self) -> None:
        self._fire()
        await self.settled()


@dataclass(frozen=True)
class _Failure:
    outcome: Outcome
    entry: ErrorEntry
    retry_after: timedelta | None
    result: str  # metric label: failed or timeout


class Executor:
    """Runs the tasks of one handler subscriber; see the module docstring."""

    def __init__(
        self,
        spec: SubscriberSpec,
        names: TopicNames,
        schemas: Mapping[str, EventSchemas],
        handlers: Mapping[Version, Handler],
        runner: Runner,
        done: DoneSet,
        ensure_loaded: Callable[[int], Awaitable[None]],
        send: Send,
        metrics: Metrics,
        *,
        canary: Canary | None = None,
        generation: Callable[[int], int] = lambda _partition: 0,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.spec, self.names, self.schemas = spec, names, schemas
        self.handlers, self.runner, self.done = handlers, runner, done
        self.canary = canary if "canary" in handlers else None
        self.policy = RetryPolicy.for_subscriber(spec)
        self._ensure_loaded, self._send, self._m = ensure_loaded, send, metrics
        self._generation = generation
        self._clock, self._sleep = clock_ms, sleep
        self._rng = rng or random.Random()  # noqa: S311 - back-off jitter, not security
        self._running: dict[str, asyncio.Future[None]] = {}
        self.backoff: Backoff | None = None

    async def process(self, task: Task) -> None:
        name = self.spec.name
        tid = task_id(h.get_str(task.headers, h.EVENT_ID) or "", name)
        partition = task.tp[1]
        await self._ensure_loaded(partition)
        while (running := self._running.get(tid)) is not None:
            await asyncio.shield(running)
        if self.done.finished_at(partition, tid, self._clock()) is not None:
            self._m.execution_skipped.labels(name).inc()
            log.debug("execution %s: %s already done, skipped", name, tid)
            await self._state(task.headers, TaskState.SKIPPED)
            return
        mine = asyncio.get_running_loop().create_future()
        self._running[tid] = mine
        try:
            await self._execute(task, tid)
        finally:
            del self._running[tid]
            mine.set_result(None)

    async def _execute(self, task: Task, tid: str) -> None:
        attempt = h.get_int(task.headers, h.ATTEMPT) or 1
        chain = error_chain(task.headers)
        generation = self._generation(task.tp[1])
        # The record's timestamp is when delivery handed the task over (see TaskState).
        start = self._start(task.headers, attempt, task.timestamp_ms or None)
        try:
            await self._attempts(task, tid, attempt, chain, generation, start)
        finally:
            start.cancel()  # an attempt cut short (cancelled) leaves no late record behind

    async def _attempts(
        self, task: Task, tid: str, attempt: int, chain: ErrorChain, generation: int, start: _Start
    ) -> None:
        try:
            payload = self._decode(task)
        except wire.WireError as exc:  # the bytes will not change: no attempt can succeed
            entry = ErrorEntry.from_exception(exc, attempt, self._now())
            bad = _Failure(Outcome.NON_RETRIABLE, entry, None, "failed")
            await start.record_now()
            await (await self._outcome(task, attempt, bad, chain.add(entry), None))
            return
        while True:
            version = self.canary.choose(tid) if self.canary is not None else "stable"
            failure = await self._run(version, payload, task.headers, attempt)
            if failure is None:
                await start.settled()
                await asyncio.gather(*await self._succeeded(task, tid, attempt, start))
                return
            await start.record_now()  # a failed attempt always shows that it ran
            chain = chain.add(failure.entry)
            delay = self._in_place_delay(attempt, failure)
            if delay is None:
                await (await self._outcome(task, attempt, failure, chain, version))
                return
            at = datetime.fromtimestamp(self._clock() / 1000, UTC) + delay
            detail = f"{failure.entry.error_type}: {failure.entry.message}; next {at.isoformat()}"
            await self._state(task.headers, TaskState.RETRYING, attempt, detail)
            await self._sleep(delay.total_seconds())
            if self._generation(task.tp[1]) != generation:  # its new owner runs it from here
                log.info("execution %s: %s revoked while retrying in place", self.spec.name, tid)
                return
            attempt += 1
            start = start.next(self._start(task.headers, attempt, None))

    def _start(
        self, headers: Mapping[str, bytes], attempt: int, dispatched_at_ms: int | None
    ) -> _Start:
        async def record(stamps: _Start) -> None:
            await self._state(
                headers,
                TaskState.RUNNING,
                attempt,
                dispatched_at_ms=stamps.dispatched_at_ms,
                at_ms=stamps.started_at_ms,
            )

        return _Start(self._clock(), dispatched_at_ms, record)

    def _in_place_delay(self, attempt: int, failure: _Failure) -> timedelta | None:
        """Ordered subscribers: the back-off before retrying here; None to send the outcome."""
        if not self.spec.ordered or failure.outcome is not Outcome.RETRIABLE:
            return None
        return self.policy.next_delay(attempt, self._rng, failure.retry_after)

    def _decode(self, task: Task) -> dict[str, object]:
        event_type = h.get_str(task.headers, h.EVENT_TYPE) or ""
        schemas = self.schemas.get(event_type)
        if schemas is None:
            raise wire.UndecodableError(f"no schema for event type {event_type!r}")
        value = wire.decode(task.value, schemas)
        if not isinstance(value, dict):
            raise wire.UndecodableError(f"{event_type} payload is a {type(value).__name__}")
        return value

    async def _run(
        self, version: Version, payload: dict[str, object], headers: Mapping[str, bytes], n: int
    ) -> _Failure | None:
        """Run the handler once; None if it succeeded."""
        name = self.spec.name
        meta = task_meta(headers, name, n)
        started = time.perf_counter()
        failure: _Failure | None = None
        error: Exception | None = None
        try:
            await self.runner.run(self.handlers[version], payload, meta)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error, failure = exc, self._classify(exc, n)
        if self.backoff is not None:
            self.backoff.record(signal_for(error))
        self._m.execution_handler_seconds.labels(name, version).observe(
            time.perf_counter() - started
        )
        result = "succeeded" if failure is None else failure.result
        self._m.execution_results.labels(name, version, result).inc()
        if self.canary is not None and self.canary.record(version, failure is None):
            self._rolled_back()
        if failure is not None:  # per task: counted in msm_execution_results_total
            log.debug(
                "execution %s: %s attempt %d failed (%s): %s",
                name,
                meta.task_id,
                n,
                failure.outcome,
                failure.entry.message or failure.entry.error_type,
            )
        return failure

    def _classify(self, exc: Exception, attempt: int) -> _Failure:
        now = self._now()
        if isinstance(exc, HandlerTimeout):
            entry = ErrorEntry(attempt=attempt, at=now, error_type="timeout", message=str(exc))
            return _Failure(Outcome.RETRIABLE, entry, None, "timeout")
        entry = ErrorEntry.from_exception(exc, attempt, now)
        retry_after = exc.delay if isinstance(exc, Retry) else None
        return _Failure(self.policy.classify(exc), entry, retry_after, "failed")

    def _rolled_back(self) -> None:
        assert self.canary is not None
        name = self.spec.name
        log.warning(
            "execution %s: canary rolled back to 0%%: error rate %.1f%% vs stable %.1f%% "
            "(threshold %.1f points)",
            name,
            100 * self.canary.error_rate("canary"),
            100 * self.canary.error_rate("stable"),
            100 * self.canary.threshold,
        )
        self._m.canary_percent.labels(name).set(0)
        self._m.canary_rollbacks.labels(name).inc()

    async def _succeeded(
        self, task: Task, tid: str, attempt: int, start: _Start
    ) -> list[Awaitable[object]]:
        at = self._clock()
        self.done.add(task.tp[1], tid, at)
        done = await self._send(
            self.names.done(self.spec.name), tid.encode(), done_value(at), [], task.tp[1]
        )
        state = await self._state_send(
            task.headers,
            TaskState.SUCCEEDED,
            attempt,
            dispatched_at_ms=None if start.recorded else start.dispatched_at_ms,
            started_at_ms=None if start.recorded else start.started_at_ms,
        )
        published = h.get_int(task.headers, h.PUBLISHED_AT)
        if published is not None:
            self._m.end_to_end_seconds.labels(self.spec.name).observe(max(0, at - published) / 1000)
        return [done, state]

    async def _outcome(
        self,
        task: Task,
        attempt: int,
        failure: _Failure,
        chain: ErrorChain,
        version: Version | None,
    ) -> Awaitable[object]:
        headers = outcome_headers(
            task.header_list,
            attempt=attempt,
            outcome=failure.outcome,
            chain=chain,
            retry_after=failure.retry_after,
            version=version,
        )
        return await self._send(self.names.outcomes, task.key, task.value, headers, None)

    async def _state_send(
        self,
        headers: Mapping[str, bytes],
        state: TaskState,
        attempt: int | None,
        detail: str = "",
        *,
        at_ms: int | None = None,
        dispatched_at_ms: int | None = None,
        started_at_ms: int | None = None,
    ) -> Awaitable[object]:
        key, value = state_record(
            headers,
            self.spec.name,
            state,
            self._clock() if at_ms is None else at_ms,
            attempt=attempt,
            detail=detail,
            dispatched_at_ms=dispatched_at_ms,
            started_at_ms=started_at_ms,
        )
        return await self._send(self.names.tasks, key, value, [], None)

    async def _state(
        self,
        headers: Mapping[str, bytes],
        state: TaskState,
        attempt: int | None = None,
        detail: str = "",
        *,
        at_ms: int | None = None,
        dispatched_at_ms: int | None = None,
    ) -> None:
        sent = await self._state_send(
            headers, state, attempt, detail, at_ms=at_ms, dispatched_at_ms=dispatched_at_ms
        )
        await sent

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock() / 1000, UTC)
