"""Retries through the delay engine: a record carrying msm.target goes there when due, not to
ready; only the topology's subscriber queues are targets."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from pipeline import headers as h
from pipeline.agents.scheduler_delay import DelayRouter
from pipeline.agents.scheduler_records import TIERED_AT
from tests.unit.test_scheduler_delay import ACCEPTED, NAMES, TIERS, Harness

SUB = NAMES.sub("mailer")
TARGET = [(h.TARGET, SUB.encode())]


@dataclass
class Targeted(Harness):
    def __post_init__(self) -> None:
        self.router = DelayRouter(
            NAMES,
            TIERS,
            self.send,
            clock_ms=lambda: self.now,
            pause=self.pause,
            resume=self.resume,
            targets=[SUB, NAMES.sub("other")],
        )


def names_of(headers: h.HeaderList) -> list[str]:
    return [k for k, _ in headers]


async def test_a_due_record_with_a_target_goes_there_by_key_without_routing_headers() -> None:
    t = Targeted()
    rec = t.record(ACCEPTED, "a", t.now - 1, headers=[*TARGET, (TIERED_AT, b"5")])
    await t.router.intake([rec])
    assert t.topics() == [SUB]
    assert t.partitions == [None]  # the subscriber queue has its own partition count
    headers = t.sent[0][3]
    assert h.TARGET not in names_of(headers)
    assert TIERED_AT not in names_of(headers)
    assert headers == [(k, v) for k, v in rec.headers if k not in (h.TARGET, TIERED_AT)]
    assert t.acked == [(ACCEPTED, 0)]


async def test_a_target_without_deliver_at_goes_there_at_once() -> None:
    t = Targeted()
    await t.router.intake([t.record(ACCEPTED, "a", headers=TARGET)])
    assert t.topics() == [SUB]


async def test_a_later_retry_travels_the_tiers_with_its_target_then_reaches_it_on_time() -> None:
    t = Targeted()
    start = t.now
    due = start + 3_500
    await t.router.intake([t.record(ACCEPTED, "a", due, headers=TARGET)])
    topic, _, _, headers, _ = t.sent[-1]
    assert topic == "ns.delay.2s"
    assert (h.TARGET, SUB.encode()) in headers  # kept until due
    tier = ("ns.delay.2s", 0)
    hop = t.record(tier, "a", due, headers=[*TARGET, (TIERED_AT, str(start).encode())])
    t.now = start + 2_000
    await t.router.intake([hop], tier_ms=2_000)
    assert t.topics()[-1] == "ns.delay.1s"
    assert (h.TARGET, SUB.encode()) in t.sent[-1][3]
    last = ("ns.delay.1s", 0)
    t.now = start + 3_000
    await t.router.intake(
        [t.record(last, "a", due, headers=[*TARGET, (TIERED_AT, str(t.now).encode())])],
        tier_ms=1_000,
    )
    assert t.topics()[-1] == "ns.delay.1s"  # held in memory, not sent again
    await t.at(due - 1)
    assert t.topics().count(SUB) == 0
    await t.at(due)
    assert t.topics()[-1] == SUB
    assert t.sent[-1][4] >= due  # never early
    assert t.partitions[-1] is None
    assert h.TARGET not in names_of(t.sent[-1][3])
    assert "ns.ready" not in t.topics()


async def test_a_held_retry_goes_to_its_target_when_due() -> None:
    t = Targeted()
    await t.router.intake([t.record(ACCEPTED, "a", t.now + 500, headers=TARGET)])
    assert t.sent == []
    await t.at(t.now + 500)
    assert t.topics() == [SUB]


async def test_a_retry_for_an_unknown_subscriber_is_rejected_when_due_never_fanned_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Targeted()
    bad = [(h.TARGET, b"elsewhere.secret")]
    with caplog.at_level(logging.WARNING):
        await t.router.intake([t.record(ACCEPTED, "a", headers=bad)])
        await t.router.intake([t.record(ACCEPTED, "b", headers=bad)])
        await t.router.intake([t.record(ACCEPTED, "c", t.now + 5_000, headers=bad)])
    assert t.topics() == ["ns.rejected", "ns.rejected", "ns.delay.2s"]
    rejected = dict(t.sent[0][3])
    assert rejected[h.REJECT_REASON] == b"unknown_target"
    assert rejected[h.TARGET] == b"elsewhere.secret"  # kept, so it can be replayed
    assert (h.TARGET, b"elsewhere.secret") in t.sent[2][3]  # still a retry while it waits
    warnings = [r for r in caplog.records if "elsewhere.secret" in r.getMessage()]
    assert len(warnings) == 1


async def test_without_targets_configured_every_target_is_refused() -> None:
    t = Harness()  # the router of the existing tests: no subscribers
    await t.router.intake([t.record(ACCEPTED, "a", headers=TARGET)])
    assert t.topics() == ["ns.rejected"]
