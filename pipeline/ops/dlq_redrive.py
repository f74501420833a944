"""Redrive: dead letters back to their subscriber's queue ``<ns>.sub.<s>`` for a fresh run.

Each redriven task starts over at attempt 1 without its error chain or routing headers, says
where it came from (``msm.redriven_from``) and gets a PENDING task record. Dead letters stay in
the dead-letter topic. What was redriven is remembered by the consumer group
``<ns>.redrive.<s>``: after the copies of a batch are acknowledged, its committed offset per
partition moves past them, so running redrive again picks up only dead letters that arrived
since (a crash between the produce and the commit may redrive a batch twice: at least once).
The marks are a high-water mark per partition and never move back: dead letters before a
``--since`` window that were passed over stay below it; ``everything`` (``--all``) ignores
the marks and redrives the whole window again. Concurrent redrives of one subscriber are not
coordinated: run one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pipeline import headers as h
from pipeline.client.encoder import producer_config
from pipeline.ops.dlq import DeadLetter, dlq_topic, select
from pipeline.ops.dlq_read import Range, kafka_error, open_reader, read_ranges, redrive_marks
from pipeline.ops.errors import OpsError
from pipeline.tasks import TaskState, state_record
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

BATCH = 200
DLQ_PREFIX = "msm.dlq."
# Per-attempt and routing headers a fresh run must not inherit (the contract's list, plus
# msm.handler, which names the handler version of one attempt).
STRIPPED = frozenset(
    {
        h.ATTEMPT,
        h.ERRORS,
        h.TARGET,
        h.DELIVER_AT,
        h.TIERED_AT,
        h.OUTCOME,
        h.RETRY_AFTER_MS,
        h.HANDLER_VERSION,
        h.REDRIVEN_FROM,
    }
)
Progress = Callable[[int, int], None]  # (redriven so far, expected total)


class RedriveError(OpsError):
    """Some redriven copies were not acknowledged; the ones before them are marked redriven."""

    retriable = True


@dataclass(frozen=True)
class RedrivePlan:
    """What a redrive will read: per partition, the offsets from the mark (or ``since``) to the
    end seen when planning."""

    subscriber: str
    topic: str
    target: str
    ranges: tuple[Range, ...]
    limit: int | None
    everything: bool

    @property
    def total(self) -> int:
        found = sum(r.size for r in self.ranges)
        return found if self.limit is None else min(found, self.limit)


@dataclass(frozen=True)
class RedriveResult:
    redriven: int
    target: str
    marks: Mapping[int, int]  # partition -> the redrive group's committed offset afterwards


def redrive_headers(headers: Iterable[tuple[str, bytes]], source: str) -> list[tuple[str, bytes]]:
    """The dead letter's headers for a fresh run: attempt 1, no errors, DLQ or routing headers,
    and ``msm.redriven_from`` = ``source`` (``topic:partition:offset``)."""
    kept = [(k, v) for k, v in headers if k not in STRIPPED and not k.startswith(DLQ_PREFIX)]
    return [*kept, (h.ATTEMPT, b"1"), (h.REDRIVEN_FROM, source.encode())]


def _pending(marks: Mapping[int, int], ranges: Iterable[Range]) -> tuple[Range, ...]:
    return tuple(Range(r.partition, max(r.start, marks.get(r.partition, 0)), r.end) for r in ranges)


def plan_redrive(
    topology: Topology,
    subscriber: str,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    everything: bool = False,
    timeout_s: float = 10.0,
) -> RedrivePlan:
    """The dead letters a redrive would take: from ``since`` (else the start), past the
    redrive marks unless ``everything``, at most ``limit``."""
    topic = dlq_topic(topology, subscriber)
    with open_reader(topology, subscriber) as consumer:
        ranges = tuple(read_ranges(consumer, topic, since, timeout_s))
        if not everything:
            parts = [r.partition for r in ranges]
            ranges = _pending(redrive_marks(consumer, topic, parts, timeout_s), ranges)
    target = TopicNames(topology.namespace).sub(subscriber)
    return RedrivePlan(subscriber, topic, target, ranges, limit, everything)


def redrive(
    topology: Topology,
    plan: RedrivePlan,
    *,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
) -> RedriveResult:
    """Produces the planned dead letters to the subscriber's queue, batch by batch, moving the
    redrive marks past each acknowledged batch."""
    tasks_topic = TopicNames(topology.namespace).tasks
    producer = Producer(producer_config(topology))
    done = 0

    def acked() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, max(plan.total, done))

    with open_reader(topology, plan.subscriber) as consumer:
        parts = [r.partition for r in plan.ranges]
        marks = redrive_marks(consumer, plan.topic, parts, timeout_s)
        ranges = plan.ranges if plan.everything else _pending(marks, plan.ranges)
        letters = select(consumer, plan.topic, ranges, plan.limit, timeout_s)
        for batch in _batches(letters):
            failures = _send(producer, batch, plan, tasks_topic, acked, timeout_s)
            advanced = advance_marks(batch, failures, marks)
            _commit(consumer, plan.topic, advanced, timeout_s)
            marks.update(advanced)
            if failures:
                first = next(iter(failures.values()))
                raise RedriveError(
                    f"{len(failures)} of {len(batch)} redriven copies were not acknowledged "
                    f"({first}); {done} redriven so far: run redrive again for the rest"
                )
    if progress:
        progress(done, done)
    return RedriveResult(done, plan.target, marks)


def _batches(letters: Iterator[DeadLetter]) -> Iterator[list[DeadLetter]]:
    while batch := list(islice(letters, BATCH)):
        yield batch


def _send(
    producer: Producer,
    batch: Sequence[DeadLetter],
    plan: RedrivePlan,
    tasks_topic: str,
    acked: Callable[[], None],
    timeout_s: float,
) -> dict[int, str]:
    """Produces each letter's copy and PENDING record; index -> error for those not acked."""
    failures: dict[int, str] = {}
    waiting = dict.fromkeys(range(len(batch)), 2)  # two records per letter

    def report(i: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:
                failures.setdefault(i, error.str())
            waiting[i] -= 1
            if waiting[i] == 0 and i not in failures:
                acked()

        return on_delivery

    now_ms = int(time.time() * 1000)
    for i, letter in enumerate(batch):
        headers = redrive_headers(letter.headers, letter.source)
        key, value = state_record(
            h.to_dict(headers),
            plan.subscriber,
            TaskState.PENDING,
            now_ms,
            attempt=1,
            detail=f"redriven from {letter.source}",
        )
        records = (
            (plan.target, letter.key, letter.payload, headers),
            (tasks_topic, key, value, None),
        )
        for topic, k, v, hs in records:
            try:
                _produce(producer, topic, k, v, hs, report(i))
            except KafkaException as exc:  # refused at once (too large, ...): no PENDING record
                failures.setdefault(i, str(kafka_error(f"producing to {topic}", exc)))
                waiting[i] = 0
                break
    left = producer.flush(timeout_s)
    if left:
        for i, count in waiting.items():
            if count:
                failures.setdefault(i, f"not acknowledged within {timeout_s:g}s")
    return failures


def _produce(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: list[tuple[str, bytes]] | None,
    on_delivery: Callable[[KafkaError | None, Message], None],
) -> None:
    pairs: list[tuple[str, str | bytes | None]] | None = None if headers is None else [*headers]
    while True:
        try:
            producer.produce(topic, value, key, headers=pairs, on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


def advance_marks(
    batch: Sequence[DeadLetter], failures: Mapping[int, str], marks: Mapping[int, int]
) -> dict[int, int]:
    """New marks: per partition, past the acknowledged letters before its first failure."""
    advanced: dict[int, int] = {}
    stopped: set[int] = set()
    for i, letter in enumerate(batch):
        p = letter.partition
        if p in stopped:
            continue
        if i in failures:
            stopped.add(p)
            continue
        if letter.offset + 1 > max(marks.get(p, 0), advanced.get(p, 0)):
            advanced[p] = letter.offset + 1
    return advanced


def _commit(consumer: Consumer, topic: str, marks: Mapping[int, int], timeout_s: float) -> None:
    if not marks:
        return
    offsets = [TopicPartition(topic, p, offset) for p, offset in sorted(marks.items())]
    try:
        for tp in consumer.commit(offsets=offsets, asynchronous=False) or ():
            if tp.error is not None:
                raise OpsError(f"marking {topic} [{tp.partition}] redriven failed: {tp.error}")
    except KafkaException as exc:
        raise kafka_error(f"marking dead letters of {topic} redriven", exc) from None
