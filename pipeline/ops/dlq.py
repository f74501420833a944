"""Dead letters: read a subscriber's ``<ns>.dlq.<s>`` for ``msm dlq list|show|redrive``.

Reading never joins a group and never commits: partitions are assigned from the offset at
``since`` (or the beginning) and read up to the end offsets seen when the read started, so a
listing is a snapshot even while delivery keeps dead-lettering. Dead letters are never deleted;
what was redriven is marked by the committed offsets of the group ``<ns>.redrive.<s>`` (see
:mod:`pipeline.ops.dlq_redrive`), which listings read to flag rows as redriven.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from confluent_kafka import Consumer, Message

from pipeline import headers as h
from pipeline.agents.delivery_policy import DeliveryPolicyError, ErrorChain, ErrorEntry
from pipeline.ops.dlq_read import (
    Range,
    header_pairs,
    open_reader,
    read_ranges,
    redrive_marks,
    scan,
)
from pipeline.ops.errors import OpsError
from pipeline.tasks import split_task_id
from pipeline.topology import Topology, parse_duration
from pipeline.topology.topics import TopicNames

_REF = re.compile(r"(?:(?P<topic>.+):)?(?P<partition>\d+):(?P<offset>\d+)")


class UnknownSubscriberError(OpsError):
    """The topology has no subscriber of that name."""


class DeadLetterNotFoundError(OpsError):
    """No dead letter matches the id or ``partition:offset`` asked for."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic with its MSM headers read out."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event_id: str
    event_type: str
    key: bytes | None
    attempts: int
    reason: str  # non_retriable or exhausted (msm.dlq.reason); "" when absent
    dead_at_ms: int | None  # msm.dlq.at
    errors: ErrorChain | None  # msm.errors; None when absent or unreadable
    errors_problem: str | None  # why msm.errors could not be read, if it could not
    headers: tuple[tuple[str, bytes], ...]
    payload: bytes
    redriven: bool = False  # below the redrive group's mark: redriven before

    @property
    def ref(self) -> str:
        """``partition:offset``, what ``msm dlq show`` accepts."""
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        """``topic:partition:offset``, the value of msm.redriven_from on its redriven copy."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def dead_at(self) -> datetime:
        ms = self.dead_at_ms if self.dead_at_ms is not None else self.timestamp_ms
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    @property
    def first_error(self) -> ErrorEntry | None:
        return self.errors.errors[0] if self.errors and self.errors.errors else None

    @property
    def last_error(self) -> ErrorEntry | None:
        return self.errors.errors[-1] if self.errors and self.errors.errors else None


def dlq_topic(topology: Topology, subscriber: str) -> str:
    """The subscriber's dead-letter topic; an unknown name fails with the closest known ones."""
    if subscriber not in topology.subscribers:
        known = sorted(topology.subscribers)
        close = difflib.get_close_matches(subscriber, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) or "none"
        raise UnknownSubscriberError(
            f"unknown subscriber {subscriber!r}{hint} (subscribers: {listing})"
        )
    return TopicNames(topology.namespace).dlq(subscriber)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (naive means UTC) or a duration ago ("1h", "30m", "1d12h")."""
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            "an ISO 8601 time like 2030-01-01T12:00:00Z or a duration ago like 30m, 1h, 2d"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def dead_letter(m: Message, redriven: bool = False) -> DeadLetter:
    """A consumed dead-letter record; odd or missing headers read as empty, never raise."""
    headers = header_pairs(m)
    named = h.to_dict(headers)
    errors: ErrorChain | None = None
    problem: str | None = None
    if h.ERRORS in named:
        try:
            errors = ErrorChain.from_json(named[h.ERRORS])
        except DeliveryPolicyError as exc:
            problem = str(exc)
    _, timestamp = m.timestamp()
    return DeadLetter(
        topic=m.topic() or "",
        partition=m.partition() or 0,
        offset=m.offset() or 0,
        timestamp_ms=timestamp,
        event_id=h.get_str(named, h.EVENT_ID) or "",
        event_type=h.get_str(named, h.EVENT_TYPE) or "",
        key=m.key(),
        attempts=h.get_int(named, h.ATTEMPT) or 1,
        reason=h.get_str(named, h.DLQ_REASON) or "",
        dead_at_ms=h.get_int(named, h.DLQ_AT),
        errors=errors,
        errors_problem=problem,
        headers=headers,
        payload=m.value() or b"",
        redriven=redriven,
    )


def select(
    consumer: Consumer,
    topic: str,
    ranges: Sequence[Range],
    limit: int | None,
    timeout_s: float,
    marks: Mapping[int, int] | None = None,
) -> Iterator[DeadLetter]:
    """Dead letters of ``ranges``; with ``limit``, the oldest ``limit`` by record time, each
    partition's share a prefix of it (so redrive marks stay contiguous)."""
    marks = marks or {}

    def letter(m: Message) -> DeadLetter:
        return dead_letter(m, (m.offset() or 0) < marks.get(m.partition() or 0, -1))

    if limit is None:
        yield from (letter(m) for m in scan(consumer, topic, ranges, timeout_s))
        return
    by_partition: dict[int, list[DeadLetter]] = {}
    for m in scan(consumer, topic, ranges, timeout_s, per_partition=limit):
        by_partition.setdefault(m.partition() or 0, []).append(letter(m))
    merged = heapq.merge(*by_partition.values(), key=lambda d: (d.timestamp_ms, d.partition))
    yield from islice(merged, limit)


def list_dead_letters(
    topology: Topology,
    subscriber: str,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> list[DeadLetter]:
    """The subscriber's dead letters (from ``since``, at most ``limit``), oldest first."""
    topic = dlq_topic(topology, subscriber)
    with open_reader(topology, subscriber) as consumer:
        ranges = read_ranges(consumer, topic, since, timeout_s)
        marks = redrive_marks(consumer, topic, [r.partition for r in ranges], timeout_s)
        letters = list(select(consumer, topic, ranges, limit, timeout_s, marks))
    return sorted(letters, key=lambda d: (d.timestamp_ms, d.partition, d.offset))


def find_dead_letters(
    topology: Topology, subscriber: str, ref: str, *, timeout_s: float = 10.0
) -> list[DeadLetter]:
    """Dead letters by ``partition:offset`` (or ``topic:partition:offset``) or by event id
    (or task id); an event dead-lettered again after a redrive has several. Oldest first."""
    topic = dlq_topic(topology, subscriber)
    match = _REF.fullmatch(ref.strip())
    with open_reader(topology, subscriber) as consumer:
        ranges = read_ranges(consumer, topic, None, timeout_s)
        marks = redrive_marks(consumer, topic, [r.partition for r in ranges], timeout_s)
        if match and match["topic"] in (None, topic):
            p, offset = int(match["partition"]), int(match["offset"])
            ranges = [Range(p, offset, r.end) for r in ranges if r.partition == p]
            ranges = [r for r in ranges if r.size]
            found = list(islice(select(consumer, topic, ranges, 1, timeout_s, marks), 1))
            found = [d for d in found if d.offset == offset]
        else:
            event_id, _ = split_task_id(ref.strip())
            wanted = event_id.encode()
            found = [
                dead_letter(m, (m.offset() or 0) < marks.get(m.partition() or 0, -1))
                for m in scan(consumer, topic, ranges, timeout_s)
                if h.to_dict(header_pairs(m)).get(h.EVENT_ID) == wanted
            ]
    if not found:
        raise DeadLetterNotFoundError(f"no dead letter {ref!r} in {topic}")
    return sorted(found, key=lambda d: (d.timestamp_ms, d.partition, d.offset))
