"""Flow control's pure core: which subscribers get a task for one ready event, with which headers.

Filters are compiled once, when the layer starts (a filter that does not compile was already a
``topology validate`` error). The payload is decoded only when a subscriber of the event's type
has a filter that reads it, and then once for all of them: meta-only filters (``meta.priority
== 'high'``) route on headers alone. A filter that cannot be evaluated (a missing field, a type
mismatch, an undecodable payload) is no match, reported as an error so the layer can count it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.filters import CompiledFilter, compile_filter, meta_from_headers
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames

_REPLACED = frozenset({h.SUBSCRIBER, h.ATTEMPT})  # set by flow on every task
FIRST_ATTEMPT = b"1"


@dataclass(frozen=True)
class Subscription:
    """One subscriber as flow control sees it: its queue topic and its compiled filter."""

    subscriber: str
    topic: str
    events: frozenset[str]
    filter: CompiledFilter | None = None


@dataclass(frozen=True)
class FanoutTask:
    subscriber: str
    topic: str
    headers: h.HeaderList


@dataclass(frozen=True)
class FilterFailure:
    subscriber: str
    reason: str


@dataclass(frozen=True)
class Fanned:
    """What one event became: tasks, subscribers filtered out, filters that failed."""

    tasks: list[FanoutTask] = field(default_factory=list)
    filtered: list[str] = field(default_factory=list)
    errors: list[FilterFailure] = field(default_factory=list)


class Fanout:
    """Routes ready events to subscriber queues; built once per worker."""

    def __init__(
        self, subscriptions: Iterable[Subscription], schemas: Mapping[str, EventSchemas]
    ) -> None:
        self._by_type: dict[str, list[Subscription]] = {}
        for sub in sorted(subscriptions, key=lambda s: s.subscriber):
            for event in sub.events:
                self._by_type.setdefault(event, []).append(sub)
        self._schemas = dict(schemas)

    @classmethod
    def from_topology(cls, topology: Topology) -> Fanout:
        names = TopicNames(topology.namespace)
        subs = [
            Subscription(
                spec.name,
                names.sub(spec.name),
                frozenset(spec.events),
                compile_filter(spec.filter) if spec.filter else None,
            )
            for spec in topology.subscribers.values()
        ]
        schemas = {
            name: EventSchemas.load(spec.schema_path, spec.previous_schemas)
            for name, spec in topology.events.items()
        }
        return cls(subs, schemas)

    def subscribers_of(self, event_type: str) -> list[str]:
        return [s.subscriber for s in self._by_type.get(event_type, ())]

    def route(self, headers: Sequence[tuple[str, bytes]], value: bytes) -> Fanned:
        """The tasks of one event (its headers as consumed, its payload bytes)."""
        named = h.to_dict(headers)
        subs = self._by_type.get(h.get_str(named, h.EVENT_TYPE) or "", [])
        out = Fanned()
        if not subs:
            return out
        filters = [s.filter for s in subs if s.filter is not None]
        meta = meta_from_headers(named) if filters else {}
        payload: Mapping[str, object] = {}
        undecodable: str | None = None
        if any(f.reads_payload for f in filters):
            payload, undecodable = self._decode(named, value)
        base = [(k, v) for k, v in headers if k not in _REPLACED]
        only = h.get_str(named, h.ONLY)
        for sub in subs:
            if only is not None and sub.subscriber != only:
                out.filtered.append(sub.subscriber)
                continue
            check = sub.filter
            if check is not None:
                if check.reads_payload and undecodable is not None:
                    out.errors.append(FilterFailure(sub.subscriber, undecodable))
                    continue
                verdict = check.check(payload, meta)
                if verdict.reason is not None:
                    out.errors.append(FilterFailure(sub.subscriber, verdict.reason))
                    continue
                if not verdict.matched:
                    out.filtered.append(sub.subscriber)
                    continue
            task_headers = [
                *base,
                (h.SUBSCRIBER, sub.subscriber.encode()),
                (h.ATTEMPT, FIRST_ATTEMPT),
            ]
            out.tasks.append(FanoutTask(sub.subscriber, sub.topic, task_headers))
        return out

    def _decode(
        self, named: Mapping[str, bytes], value: bytes
    ) -> tuple[Mapping[str, object], str | None]:
        """(payload, None), or ({}, why) when the bytes cannot be read."""
        event_type = h.get_str(named, h.EVENT_TYPE) or ""
        schemas = self._schemas.get(event_type)
        if schemas is None:
            return {}, f"no schema for event type {event_type!r}"
        try:
            record = wire.decode(value, schemas)
        except wire.WireError as exc:
            return {}, f"undecodable payload ({exc.code}): {exc}"
        return (record if isinstance(record, Mapping) else {}), None


class Throttle:
    """At most one log line per key per ``interval_s``: a broken filter fails on every event."""

    def __init__(
        self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None when the line must be left out; else how many were left out since the last."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)
