"""Handlers that misbehave on purpose, for the failing-handlers scenario.

Which event a fault hits is a pure function of its id (``<prefix>-<n>``, see
:func:`chaos.generator.plan`), so the scenario knows without asking the workers what each event
should have met: 1 in :data:`EVERY` events for each quick fault, 1 in :data:`HANG_EVERY` for a
hang. Hangs are rarer because MSM's adaptive limit rightly reads a timeout as an overloaded
handler and halves the runs allowed at once: with a hang every few events a subscriber crawls
at about one run per timeout and a smoke run never drains. Faults are on only while the flag
file named by :data:`FAULTS_ENV` exists (read at most every :data:`RECHECK_S`), so the same
pipeline runs a fault-free phase and then a faulty one.

A handler records an execution in the ledger only when it is about to succeed: the ledger then
lists the successes, and every other event must be in the subscriber's dead-letter topic.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path

from chaos.handlers import record
from chaos.ledger import Execution, writer
from pipeline.handler import TaskMeta

FAULTS_ENV = "MSM_CHAOS_FAULTS"  # path of the flag file: faults are on while it exists
RECHECK_S = 0.5
EVERY, HANG_EVERY = 50, 200
TIMEOUT_S = 0.5  # the faulty subscribers' timeout; a hang outlives it five times
HANG_S = TIMEOUT_S * 5
HANDLER_EXIT = "pipeline.agents.execution_handlers.HandlerExit"


class Fault(StrEnum):
    RAISE = "raise"  # a plain exception on every attempt: retried, then dead-lettered
    HANG = "hang"  # sleeps past the timeout on every attempt (async: every other one also
    # ignores the cancellation)
    EXIT = "exit"  # SystemExit, KeyboardInterrupt or CancelledError: must not end the worker
    POISON = "poison"  # a non_retriable exception: straight to the dead-letter topic
    FLAKY = "flaky"  # fails the first attempt only: the retry must succeed


# residues of n: EVERY for the quick faults, HANG_EVERY for the hang (distinct modulo EVERY)
_QUICK = {0: Fault.RAISE, 10: Fault.EXIT, 20: Fault.POISON, 30: Fault.FLAKY}
_HANG_AT = 40
_EXITS: tuple[Callable[[], BaseException], ...] = (
    lambda: SystemExit(3),
    KeyboardInterrupt,
    asyncio.CancelledError,
)


class Boom(Exception):
    """A handler failure any retry would meet again."""


class Poison(Exception):
    """Listed in the subscriber's ``non_retriable``: dead-lettered on its first failure."""


def event_number(event_id: str) -> int | None:
    """``n`` of ``<prefix>-<n>``; None for ids the generator did not make."""
    _, _, tail = event_id.rpartition("-")
    return int(tail) if tail.isdigit() else None


def fault_of(event_id: str) -> Fault | None:
    """The fault this event meets while faults are on; None: it always succeeds."""
    n = event_number(event_id)
    if n is None:
        return None
    return Fault.HANG if n % HANG_EVERY == _HANG_AT else _QUICK.get(n % EVERY)


def fails(fault: Fault | None, attempt: int) -> bool:
    return fault is not None and (fault is not Fault.FLAKY or attempt == 1)


def exit_exception(event_id: str) -> BaseException:
    """The BaseException an EXIT event raises: the three kinds take turns."""
    n = event_number(event_id) or 0
    return _EXITS[n // EVERY % len(_EXITS)]()


def explains(fault: Fault | None, reason: str, error_type: str) -> bool:
    """Whether a dead letter (its ``msm.dlq.reason`` and last error type) is what ``fault``
    should lead to; False for an event that should have succeeded."""
    expected = {
        Fault.RAISE: ("exhausted", f"{__name__}.Boom"),
        Fault.HANG: ("exhausted", "timeout"),
        Fault.EXIT: ("exhausted", HANDLER_EXIT),
        Fault.POISON: ("non_retriable", f"{__name__}.Poison"),
    }
    return fault in expected and expected[fault] == (reason, error_type)


class Switch:
    """Whether the flag file exists, looked at no more often than every ``recheck_s``."""

    def __init__(
        self,
        path: str | None,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path) if path else None
        self.recheck_s, self._clock = recheck_s, clock
        self._on, self._checked = False, float("-inf")
        self._lock = threading.Lock()  # sync handlers ask from their threads

    def on(self) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._checked >= self.recheck_s:
                self._on = self.path is not None and self.path.exists()
                self._checked = now
            return self._on


_switch: Switch | None = None


def _faults_on() -> bool:
    global _switch
    if _switch is None:
        _switch = Switch(os.environ.get(FAULTS_ENV))
    return _switch.on()


def _fault_now(meta: TaskMeta) -> Fault | None:
    fault = fault_of(meta.event_id)
    return fault if fails(fault, meta.attempt) and _faults_on() else None


async def misbehave(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """``chaos.faulty:misbehave`` (async): the event's fault, or a recorded success."""
    fault = _fault_now(meta)
    if fault is None:
        await record(payload, meta)
    elif fault is Fault.HANG:
        await _hang(stubborn=(event_number(meta.event_id) or 0) // HANG_EVERY % 2 == 1)
    else:
        raise _failure(fault, meta.event_id)


async def _hang(*, stubborn: bool) -> None:
    """Sleep past the timeout; a stubborn hang also swallows the cancellation and sleeps on,
    which MSM must not wait for either. Returns unrecorded: MSM gave up on it."""
    try:
        await asyncio.sleep(HANG_S)
    except asyncio.CancelledError:
        if not stubborn:
            raise
        await asyncio.sleep(HANG_S)


def misbehave_sync(payload: Mapping[str, object], meta: TaskMeta) -> None:
    """``chaos.faulty:misbehave_sync``: the same in a thread; a hang blocks that thread."""
    fault = _fault_now(meta)
    if fault is None:
        writer().write(_execution(payload, meta))
    elif fault is Fault.HANG:
        time.sleep(HANG_S)  # returns unrecorded: MSM gave up on it long ago
    else:
        raise _failure(fault, meta.event_id)


def _failure(fault: Fault, event_id: str) -> BaseException:
    if fault is Fault.EXIT:
        return exit_exception(event_id)
    if fault is Fault.POISON:
        return Poison(f"{event_id} can never succeed")
    return Boom(f"{event_id} failed ({fault})")


def _execution(payload: Mapping[str, object], meta: TaskMeta) -> Execution:
    seq = payload["seq"]
    return Execution(
        subscriber=meta.subscriber,
        event_id=meta.event_id,
        key=str(payload["key"]),
        seq=seq if isinstance(seq, int) else -1,
        attempt=meta.attempt,
        pid=os.getpid(),
        started_ns=time.time_ns(),
    )
