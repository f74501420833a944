"""Finding a subscriber's handler by its dotted path, and running it under a timeout.

Handlers are imported when the worker registers its agents, so a typo in the topology stops the
worker at start with the subscriber and path named, not at the first task.

An async handler runs as its own asyncio task: on timeout it is cancelled and not waited for, so
one that swallows the cancellation still cannot hold its slot. A sync handler runs in a
thread of its own, started per run (the gate's concurrency bounds how many run at once). Python
cannot stop a thread: one that outlives its timeout is abandoned, still running, and counted; a
later task never queues behind it, as it would in a fixed pool. The threads are daemons because a
``ThreadPoolExecutor``'s are joined at interpreter exit: one hung handler would keep a stopping
worker alive forever. An async handler that blocks the event loop (``time.sleep`` in an
``async def``) stalls the whole worker: nothing here can prevent that.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pipeline.errors import ConfigError, MSMError
from pipeline.handler import TaskMeta

__all__ = ["Handler", "HandlerExit", "HandlerTimeout", "Runner", "is_async", "load_handler"]

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, object], TaskMeta], Any]


class HandlerTimeout(MSMError):
    """The handler did not finish within the subscriber's timeout (error type "timeout")."""

    retriable = True


def load_handler(path: str, subscriber: str) -> Handler:
    """The callable named ``package.module:function`` (the function may be ``Class.attr``)."""
    where = f"subscriber {subscriber!r}: handler {path!r}"
    module_name, _, attrs = path.partition(":")
    if not module_name or not attrs:
        raise ConfigError(f"{where}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                f"{where}: no module {exc.name!r} (is its directory on PYTHONPATH?)"
            ) from None
        raise ConfigError(f"{where}: importing {module_name} failed: {exc!r}") from exc
    except Exception as exc:
        raise ConfigError(f"{where}: importing {module_name} failed: {exc!r}") from exc
    found: object = module
    for attr in attrs.split("."):
        try:
            found = getattr(found, attr)
        except AttributeError:
            raise ConfigError(f"{where}: {module_name} has no attribute {attrs!r}") from None
    if not callable(found):
        raise ConfigError(f"{where}: {attrs} is a {type(found).__name__}, not a function")
    return found


def is_async(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects' async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class Runner:
    """Runs one subscriber's handlers (stable and canary) with its timeout."""

    def __init__(self, subscriber: str, timeout_s: float) -> None:
        self.subscriber = subscriber
        self.timeout_s = timeout_s
        self.abandoned = 0  # handler threads given up on so far
        self.threads = 0  # handler threads running now, abandoned ones included
        self._lock = threading.Lock()  # threads end in their own thread

    async def run(self, handler: Handler, payload: Mapping[str, object], meta: TaskMeta) -> None:
        """Return when ``handler`` returned; raise what it raised, or :class:`HandlerTimeout`."""
        if is_async(handler):
            await self._run_async(handler(payload, meta))
        else:
            # The thread runs in a copy of this task's context: its log lines name the task.
            run = contextvars.copy_context().run
            await self._run_sync(functools.partial(run, handler, payload, meta))

    async def _run_async(self, awaitable: Awaitable[object]) -> None:
        job = asyncio.ensure_future(_contained(awaitable))
        try:
            done, _ = await asyncio.wait({job}, timeout=self.timeout_s)
        except asyncio.CancelledError:  # the worker is stopping: the handler stops too
            job.cancel()
            raise
        if not done:
            job.cancel()
            job.add_done_callback(_consume)  # it may never finish; never log it as lost
            raise HandlerTimeout(self._timeout_message())
        if job.cancelled():  # the handler raised CancelledError itself: its failure, not ours
            raise HandlerExit("the handler was cancelled")
        job.result()

    async def _run_sync(self, call: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        thread = threading.Thread(
            target=self._in_thread,
            args=(loop, future, call),
            name=f"msm-handler-{self.subscriber}",
            daemon=True,  # a hung handler must not keep a stopping worker alive
        )
        with self._lock:
            self.threads += 1
        thread.start()
        try:
            done, _ = await asyncio.wait({future}, timeout=self.timeout_s)
        except asyncio.CancelledError:  # the worker is stopping; the thread is left to end
            future.cancel()
            raise
        if not done:
            future.cancel()  # its result, if it ever comes, is dropped
            self._abandon()
            raise HandlerTimeout(self._timeout_message())
        result = future.result()
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            await self._run_async(result)

    def _in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[object],
        call: Callable[[], object],
    ) -> None:
        try:
            outcome: tuple[object, BaseException | None] = (call(), None)
        except BaseException as exc:  # SystemExit included: it fails the task, not the worker
            outcome = (None, _contain(exc))
        finally:
            with self._lock:
                self.threads -= 1
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker has stopped
            loop.call_soon_threadsafe(_settle, future, *outcome)

    def _abandon(self) -> None:
        with self._lock:
            self.abandoned += 1
            running = self.threads
        log.warning(
            "execution %s: a handler thread outlived its %gs timeout and was abandoned "
            "(%d handler thread(s) running)",
            self.subscriber,
            self.timeout_s,
            running,
        )

    def _timeout_message(self) -> str:
        return f"no result within {self.timeout_s:g}s"


class HandlerExit(MSMError):
    """The handler raised SystemExit, KeyboardInterrupt or CancelledError: its task fails, the
    worker lives (and the gate's bookkeeping, which a CancelledError would cut short)."""

    retriable = True


def _contain(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, Exception) else HandlerExit(f"the handler raised {exc!r}")


async def _contained(awaitable: Awaitable[object]) -> object:
    try:
        return await awaitable
    except (SystemExit, KeyboardInterrupt) as exc:  # asyncio would re-raise them in the loop
        raise _contain(exc) from None


def _settle(future: asyncio.Future[object], result: object, exc: BaseException | None) -> None:
    if future.done():  # timed out or cancelled meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _consume(job: asyncio.Future[Any]) -> None:
    with contextlib.suppress(BaseException):
        job.exception()
