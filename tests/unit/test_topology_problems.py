"""Every kind of topology problem is reported at its YAML path, with what was found and expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.topology import Problem, TopologyError, load_topology
from tests.fixtures.topologies import minimal, write_topology

Doc = dict[str, Any]


def problems_of(path: Path) -> tuple[Problem, ...]:
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return info.value.problems


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A document edit: set the value at a path of keys separated by '/'."""

    def edit(doc: Doc) -> None:
        *parents, last = path.split("/")
        target = doc
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value

    return edit


def _delete(path: str) -> Callable[[Doc], None]:
    def edit(doc: Doc) -> None:
        *parents, last = path.split("/")
        target = doc
        for key in parents:
            target = target[key]
        del target[last]

    return edit


CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    # (id, edit, YAML path, text expected in the rendered problem)
    ("unknown top key", _set("subscriber", {}), "subscriber", "did you mean 'subscribers'?"),
    ("namespace", _set("namespace", "a b"), "namespace", "found 'a b', expected a name"),
    ("tier syntax", _set("delay_tiers", ["1s", "5x"]), "delay_tiers[1]", "found '5x'"),
    ("tier negative", _set("delay_tiers", ["-1s"]), "delay_tiers[0]", "a duration like"),
    ("tier twice", _set("delay_tiers", ["1s", "1s"]), "delay_tiers[1]", "1s listed twice"),
    ("isr", _set("kafka/min_insync_replicas", 2), "kafka.min_insync_replicas", "found 2"),
    (
        "partitions",
        _set("events/thing.created/partitions", "six"),
        'events["thing.created"].partitions',
        "found 'six', expected an integer",
    ),
    (
        "retention",
        _set("events/thing.created/retention", "7 days"),
        'events["thing.created"].retention',
        "found '7 days', expected a duration",
    ),
    (
        "event name",
        _set("events/bad name!", {"schema": "schemas/other.avsc"}),
        'events["bad name!"]',
        "expected an event name",
    ),
    (
        "reserved key",
        _set("events/thing.created/name", "x"),
        'events["thing.created"].name',
        "unknown key 'name'",
    ),
    (
        "missing schema key",
        _delete("events/other.happened/schema"),
        'events["other.happened"].schema',
        "found nothing, expected a value",
    ),
    (
        "schema missing",
        _set("events/other.happened/schema", "schemas/nope.avsc"),
        'events["other.happened"].schema',
        "nope.avsc (schema file not found)",
    ),
    (
        "schema not JSON",
        _set("events/other.happened/schema", "schemas/not-json.avsc"),
        'events["other.happened"].schema',
        "not JSON at line 2, column 1",
    ),
    (
        "key not a field",
        _set("events/thing.created/key", "size_"),
        'events["thing.created"].key',
        "did you mean 'size'?",
    ),
    (
        "incompatible",
        _set("events/thing.created/schema", "schemas/thing.v3-breaking.avsc"),
        'events["thing.created"].previous_schemas[0]',
        "thing.v1.avsc that",
    ),
    (
        "handler syntax",
        _set("subscribers/thumbnailer/handler", "module.function"),
        "subscribers.thumbnailer.handler",
        "'package.module:function'",
    ),
    (
        "handler and endpoint",
        _set("subscribers/thumbnailer/endpoint", "http://x/y"),
        "subscribers.thumbnailer",
        "found both 'handler' and 'endpoint', expected exactly one",
    ),
    (
        "neither target",
        _delete("subscribers/thumbnailer/handler"),
        "subscribers.thumbnailer",
        "found neither",
    ),
    (
        "endpoint scheme",
        _set("subscribers/indexer/endpoint", "ftp://x/y"),
        "subscribers.indexer.endpoint",
        "an http:// or https:// URL",
    ),
    (
        "health without endpoint",
        _set("subscribers/thumbnailer/health_check", "http://x/h"),
        "subscribers.thumbnailer.health_check",
        "no health_check without an endpoint",
    ),
    (
        "concurrency",
        _set("subscribers/thumbnailer/concurrency", {"min": 4, "max": 2}),
        "subscribers.thumbnailer.concurrency.min",
        "found min 4 > max 2, expected min <= max",
    ),
    (
        "retry bounds",
        _set("subscribers/thumbnailer/retry/initial", "2m"),
        "subscribers.thumbnailer.retry.initial",
        "initial 2m > max 1m",
    ),
    (
        "backoff",
        _set("subscribers/thumbnailer/retry/backoff", "linear"),
        "subscribers.thumbnailer.retry.backoff",
        "one of 'exponential' or 'fixed'",
    ),
    (
        "misspelled nested",
        _set("subscribers/thumbnailer/retry/max_attempt", 3),
        "subscribers.thumbnailer.retry.max_attempt",
        "did you mean 'max_attempts'?",
    ),
    (
        "rate",
        _set("subscribers/thumbnailer/rate_limit", "fast"),
        "subscribers.thumbnailer.rate_limit",
        "a rate like '100/s'",
    ),
    (
        "priority",
        _set("subscribers/thumbnailer/priority", "urgent"),
        "subscribers.thumbnailer.priority",
        "one of 'high', 'normal' or 'low'",
    ),
    (
        "timeout zero",
        _set("subscribers/thumbnailer/timeout", "0s"),
        "subscribers.thumbnailer.timeout",
        "a duration longer than 0s",
    ),
    (
        "ordered",
        _set("subscribers/indexer/ordered", "yes"),
        "subscribers.indexer.ordered",
        "true or false",
    ),
    (
        "filter empty",
        _set("subscribers/thumbnailer/filter", " "),
        "subscribers.thumbnailer.filter",
        "a non-empty string",
    ),
    (
        "non_retriable",
        _set("subscribers/thumbnailer/non_retriable", ["bad name"]),
        "subscribers.thumbnailer.non_retriable[0]",
        "a dotted exception name",
    ),
    (
        "canary percent",
        _set("subscribers/thumbnailer/canary", {"handler": "a:b", "percent": 101}),
        "subscribers.thumbnailer.canary.percent",
        "a number <= 100",
    ),
    (
        "canary on endpoint",
        _set("subscribers/indexer/canary", {"handler": "a:b"}),
        "subscribers.indexer.canary",
        "canaries only for handler subscribers",
    ),
    (
        "no events",
        _set("subscribers/indexer/events", []),
        "subscribers.indexer.events",
        "at least 1 item",
    ),
    (
        "unknown event",
        _set("subscribers/indexer/events", ["other.happend"]),
        "subscribers.indexer.events[0]",
        "did you mean 'other.happened'?",
    ),
    (
        "schedule event",
        _set("schedules/nightly/event", "nope"),
        "schedules.nightly.event",
        "unknown event 'nope'",
    ),
    (
        "cron",
        _set("schedules/nightly/cron", "0 25 * * *"),
        "schedules.nightly.cron",
        "a cron expression",
    ),
    (
        "timezone",
        _set("schedules/nightly/timezone", "Mars/Olympus"),
        "schedules.nightly.timezone",
        "an IANA time zone",
    ),
    (
        "missed",
        _set("schedules/nightly/missed", "catch_up"),
        "schedules.nightly.missed",
        "one of 'skip' or 'fire_once'",
    ),
    (
        "name clash",
        _set("events/thing_created", {"schema": "schemas/other.avsc"}),
        "events.thing_created",
        "collides with 'thing.created'",
    ),
]


@pytest.mark.parametrize(
    ("edit", "path", "text"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_problem_names_its_path(
    tmp_path: Path, edit: Callable[[Doc], None], path: str, text: str
) -> None:
    doc = minimal()
    edit(doc)
    problems = problems_of(write_topology(tmp_path, doc))
    assert [p.path for p in problems] == [path], problems
    assert text in str(problems[0])
