"""The load: events at a steady rate from a thread, while the scenario injects faults.

Keys take turns (event n has key ``k<n mod keys>``) and each key counts its own ``seq`` from
0, so the checker can tell order per key. Every ``delayed_every``-th event is delayed (spread
over ``delays_ms``) so killing the scheduler hits work it holds and ``early`` can be checked.
Sends are ``wait=False``; an event counts as published only once Kafka acknowledged it (the
final flush names the ones it refused). The schedule is open loop: a late send does not
shift the ones after it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Protocol

from chaos.checker import Published
from pipeline.client.encoder import deliver_at_ms
from pipeline.client.errors import PublishError

EVENT_TYPE = "chaos.event"


@dataclass(frozen=True)
class Planned:
    event_id: str
    key: str
    seq: int
    delay_ms: int  # 0: due now


def plan(
    prefix: str, keys: int, *, delayed_every: int = 0, delays_ms: tuple[int, int] = (0, 0)
) -> Iterator[Planned]:
    """Endless: ids ``<prefix>-<n>``, keys in turn, per-key seq; deterministic (no RNG)."""
    seqs = [0] * keys
    low, high = delays_ms
    for n in count():
        k = n % keys
        seq, seqs[k] = seqs[k], seqs[k] + 1
        delayed = delayed_every > 0 and n % delayed_every == delayed_every - 1
        # a spread that is not a multiple of the key count, so one key sees several delays
        delay = low + (n * 7919) % (high - low + 1) if delayed else 0
        yield Planned(f"{prefix}-{n}", f"k{k}", seq, delay)


@dataclass(frozen=True)
class Sent:
    published: list[Published]  # acknowledged by Kafka, in send order
    refused: int  # sends that raised or that Kafka refused
    behind_ms: float  # the worst lateness of a send against its planned time
    seconds: float


class Sink(Protocol):
    """What the generator needs of :class:`pipeline.client.Publisher` (a fake in tests)."""

    def publish(
        self,
        event_type: str,
        payload: object,
        *,
        event_id: str,
        deliver_at: datetime | None,
        wait: bool,
    ) -> str: ...

    def flush(self, timeout_s: float = 30.0) -> None: ...


class Generator:
    """Publishes ``plan(...)`` at ``rate``/s on a thread while :meth:`running`."""

    def __init__(
        self,
        publisher: Sink,
        rate: float,
        keys: int,
        *,
        prefix: str = "c",
        delayed_every: int = 0,
        delays_ms: tuple[int, int] = (0, 0),
    ) -> None:
        self.publisher = publisher
        self.rate = rate
        self._plan = plan(prefix, keys, delayed_every=delayed_every, delays_ms=delays_ms)
        self._sent: list[Published] = []
        self._errors = 0
        self._behind_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-generator", daemon=True)
        self._began = self._seconds = 0.0

    @property
    def sent(self) -> int:
        return len(self._sent)

    @contextmanager
    def running(self) -> Iterator[Generator]:
        """Sends while the block runs; stops sending however it ends (not a flush)."""
        self._began = time.monotonic()
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self._seconds = time.monotonic() - self._began

    def result(self, flush_s: float = 90.0) -> Sent:
        """After :meth:`running`: wait for every acknowledgement; the acknowledged events."""
        refused = self._flush(flush_s)
        published = [p for p in self._sent if p.event_id not in refused]
        return Sent(published, self._errors + len(refused), self._behind_s * 1000, self._seconds)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        for i, planned in enumerate(self._plan):
            due = self._began + i * interval
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            if self._stop.is_set():
                return
            self._behind_s = max(self._behind_s, -wait)
            self._send(planned)

    def _send(self, planned: Planned) -> None:
        payload = {"id": planned.event_id, "key": planned.key, "seq": planned.seq}
        sent_ns = time.time_ns()
        deliver_at = None
        if planned.delay_ms:
            deliver_at = datetime.now(UTC) + timedelta(milliseconds=planned.delay_ms)
        try:
            self.publisher.publish(
                EVENT_TYPE,
                {**payload, "sent_ns": sent_ns},
                event_id=planned.event_id,
                deliver_at=deliver_at,
                wait=False,
            )
        except Exception:  # counted as refused: only acknowledged events are owed
            self._errors += 1
            return
        # the header value exactly as the encoder computed it from the same datetime
        due_ms = deliver_at_ms(None, deliver_at) if deliver_at else None
        due_ns = due_ms * 1_000_000 if due_ms else 0
        self._sent.append(Published(planned.event_id, planned.key, planned.seq, sent_ns, due_ns))

    def _flush(self, timeout_s: float) -> set[str]:
        """The ids Kafka refused. librdkafka reports every send within its delivery timeout
        (30 s), so a flush that outlasts it has heard about all of them."""
        refused: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.publisher.flush(max(1.0, deadline - time.monotonic()))
                return refused
            except PublishError as exc:
                refused.update(exc.event_ids)
                if not exc.event_ids and time.monotonic() >= deadline:
                    raise
