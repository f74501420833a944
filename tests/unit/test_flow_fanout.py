"""Flow control's fan-out without Kafka: which subscribers get a task, with which headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline import headers as h
from pipeline.agents.flow_fanout import Fanout, FilterFailure, Subscription, Throttle
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas, load_schema
from pipeline.filters import CompiledFilter, compile_filter
from pipeline.topology import load_topology
from tests.fixtures.topologies import SCHEMAS, minimal, write_topology

THING = "thing.created"
OTHER = "other.happened"
V2 = SCHEMAS / "thing.v2.avsc"
V1 = SCHEMAS / "thing.v1.avsc"


def schemas() -> dict[str, EventSchemas]:
    return {
        THING: EventSchemas.load(V2, [V1]),
        OTHER: EventSchemas.load(SCHEMAS / "other.avsc"),
    }


def sub(name: str, events: tuple[str, ...], expression: str | None = None) -> Subscription:
    compiled = compile_filter(expression) if expression else None
    return Subscription(name, f"ns.sub.{name}", frozenset(events), compiled)


def event(
    event_type: str = THING, extra: dict[str, str] | None = None
) -> tuple[list[tuple[str, bytes]], bytes]:
    schema = load_schema(V2 if event_type == THING else SCHEMAS / "other.avsc")
    record = {"id": "a", "size": 5, "colour": "red"} if event_type == THING else {"key": "k"}
    headers = h.encode(
        {
            h.EVENT_ID: "ev-1",
            h.EVENT_TYPE: event_type,
            h.SCHEMA_FINGERPRINT: schema.fingerprint_hex,
            h.KEY: "a",
            h.PUBLISHED_AT: 1_700_000_000_000,
            **(extra or {}),
        }
    )
    return [*headers, ("x-app", b"kept")], wire.encode(schema, record)


def test_every_subscriber_of_the_type_gets_a_task_with_its_headers() -> None:
    fan = Fanout([sub("b", (THING,)), sub("a", (THING, OTHER)), sub("c", (OTHER,))], schemas())
    headers, value = event()
    out = fan.route(headers, value)
    assert [t.subscriber for t in out.tasks] == ["a", "b"]  # by name, "c" not subscribed
    assert [t.topic for t in out.tasks] == ["ns.sub.a", "ns.sub.b"]
    task = out.tasks[0]
    assert task.headers == [*headers, (h.SUBSCRIBER, b"a"), (h.ATTEMPT, b"1")]
    assert out.filtered == []
    assert out.errors == []


def test_an_event_type_nobody_subscribes_to_makes_no_task() -> None:
    fan = Fanout([sub("a", (OTHER,))], schemas())
    assert fan.route(*event()).tasks == []
    assert fan.route([(h.EVENT_ID, b"x")], b"").tasks == []  # no type at all


def test_subscriber_and_attempt_headers_are_replaced_not_duplicated() -> None:
    fan = Fanout([sub("a", (THING,))], schemas())
    headers, value = event(extra={h.SUBSCRIBER: "old", h.ATTEMPT: "4"})
    task = fan.route(headers, value).tasks[0]
    assert [v for k, v in task.headers if k == h.SUBSCRIBER] == [b"a"]
    assert [v for k, v in task.headers if k == h.ATTEMPT] == [b"1"]


@pytest.mark.parametrize(
    ("expression", "matched"),
    [
        ("size > 3", True),
        ("size > 30", False),
        ("payload.colour == 'red' && id == 'a'", True),
        ("colour.startsWith('bl')", False),
        ("meta.type == 'thing.created'", True),
        ("meta.attempt == 1 && meta.key == 'a'", True),
        ("meta.id == 'other'", False),
    ],
)
def test_payload_and_meta_filters(expression: str, matched: bool) -> None:
    fan = Fanout([sub("a", (THING,), expression), sub("z", (THING,))], schemas())
    out = fan.route(*event())
    assert [t.subscriber for t in out.tasks] == (["a", "z"] if matched else ["z"])
    assert out.filtered == ([] if matched else ["a"])
    assert out.errors == []


def test_an_older_schema_version_is_read_as_the_current_one() -> None:
    fan = Fanout([sub("a", (THING,), "colour == 'blue' && size == 7")], schemas())
    headers, _ = event()
    old = wire.encode(load_schema(V1), {"id": "a", "size": 7})  # colour defaults to blue
    assert [t.subscriber for t in fan.route(headers, old).tasks] == ["a"]


def test_a_filter_that_fails_is_no_match_and_an_error_others_unaffected() -> None:
    subs = [sub("a", (THING,), "missing_field > 3"), sub("b", (THING,), "size / 0 > 1")]
    fan = Fanout([*subs, sub("c", (THING,), "size > 1")], schemas())
    out = fan.route(*event())
    assert [t.subscriber for t in out.tasks] == ["c"]
    assert [e.subscriber for e in out.errors] == ["a", "b"]
    assert "missing_field" in out.errors[0].reason
    assert out.filtered == []


def test_an_undecodable_payload_fails_payload_filters_only() -> None:
    subs = [sub("p", (THING,), "size > 1"), sub("m", (THING,), "meta.key == 'a'")]
    fan = Fanout([*subs, sub("all", (THING,))], schemas())
    headers, _ = event()
    out = fan.route(headers, b"\xc3\x01" + bytes(8) + b"junk")
    assert [t.subscriber for t in out.tasks] == ["all", "m"]
    assert out.errors == [FilterFailure("p", out.errors[0].reason)]
    assert "unknown_fingerprint" in out.errors[0].reason


def test_the_payload_is_decoded_only_when_a_filter_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    real = wire.decode

    def counting(data: bytes, *args: Any, **kwargs: Any) -> object:
        decoded.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(wire, "decode", counting)
    meta_only = Fanout([sub("m", (THING,), "meta.key == 'a'"), sub("n", (THING,))], schemas())
    assert len(meta_only.route(*event()).tasks) == 2
    assert decoded == []
    # junk bytes are never looked at when no filter reads the payload
    assert len(meta_only.route(event()[0], b"junk").tasks) == 2
    both = Fanout([sub("p", (THING,), "size > 1"), sub("q", (THING,), "id == 'a'")], schemas())
    assert len(both.route(*event()).tasks) == 2
    assert len(decoded) == 1  # once per event, for every filter that reads it


def test_from_topology_compiles_each_filter_once(tmp_path: Path) -> None:
    doc = minimal()
    doc["subscribers"]["thumbnailer"]["filter"] = "size < 10"
    doc["subscribers"]["indexer"]["filter"] = "meta.type == 'other.happened'"
    fan = Fanout.from_topology(load_topology(write_topology(tmp_path, doc)))
    out = fan.route(*event())
    assert [t.subscriber for t in out.tasks] == ["thumbnailer"]
    assert [t.topic for t in out.tasks] == ["msm-test.sub.thumbnailer"]
    assert out.filtered == ["indexer"]
    assert fan.subscribers_of(OTHER) == ["indexer"]
    routes = fan._by_type[THING]
    assert all(isinstance(r.filter, CompiledFilter) for r in routes)


def test_throttle_allows_one_line_per_key_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    assert throttle.allow("a") == 0
    assert throttle.allow("a") is None
    assert throttle.allow("b") == 0  # per key
    now[0] = 30.0
    assert throttle.allow("a") is None
    now[0] = 60.0
    assert throttle.allow("a") == 2  # two left out since the last line
    assert throttle.allow("a") is None


def test_an_event_for_one_subscriber_reaches_only_that_subscriber() -> None:
    fan = Fanout([sub("a", (THING,)), sub("b", (THING,))], schemas())
    headers, value = event(extra={h.ONLY: "b"})
    out = fan.route(headers, value)
    assert [t.subscriber for t in out.tasks] == ["b"]
    assert out.filtered == ["a"]
    headers, value = event(extra={h.ONLY: "nobody"})
    assert fan.route(headers, value).tasks == []
