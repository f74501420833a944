"""The delay engine without a broker: a fake clock, fake produces, fake partition pauses."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from pipeline import headers as h
from pipeline.agents.scheduler_delay import DelayRouter
from pipeline.agents.scheduler_records import TIERED_AT, Incoming
from pipeline.topology.topics import TopicNames

NAMES = TopicNames("ns")
TIERS = (timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=10))
ACCEPTED = ("ns.accepted", 0)


@dataclass
class Harness:
    now: int = 1_000_000
    sent: list[tuple[str, bytes | None, bytes, h.HeaderList, int]] = field(default_factory=list)
    acked: list[tuple[tuple[str, int], int]] = field(default_factory=list)
    paused: set[tuple[str, int]] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    partitions: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.router = DelayRouter(
            NAMES,
            TIERS,
            self.send,
            clock_ms=lambda: self.now,
            pause=self.pause,
            resume=self.resume,
        )

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: h.HeaderList,
        partition: int | None,
    ) -> Awaitable[object]:
        self.sent.append((topic, key, value, headers, self.now))
        self.partitions.append(partition)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def pause(self, tp: tuple[str, int]) -> None:
        self.paused.add(tp)

    async def resume(self, tp: tuple[str, int]) -> None:
        self.paused.discard(tp)

    def record(
        self,
        tp: tuple[str, int],
        key: str,
        deliver_at: int | None = None,
        *,
        headers: h.HeaderList | None = None,
        timestamp: int | None = None,
        offset: int | None = None,
    ) -> Incoming:
        if offset is None:
            offset = self.offsets.get(tp, 0)
        self.offsets[tp] = offset + 1
        hs = [(h.EVENT_ID, key.encode()), ("x-app", b"1"), *(headers or [])]
        if deliver_at is not None:
            hs.append((h.DELIVER_AT, str(deliver_at).encode()))

        async def ack() -> None:
            self.acked.append((tp, offset))

        stamp = self.now if timestamp is None else timestamp
        return Incoming(tp, offset, stamp, key.encode(), b"payload-" + key.encode(), hs, ack)

    def topics(self) -> list[str]:
        return [s[0] for s in self.sent]

    async def at(self, now: int) -> None:
        self.now = now
        await self.router.release_due()


async def test_due_events_go_to_ready_untouched_and_are_acked_after_the_produce() -> None:
    t = Harness()
    records = [t.record(ACCEPTED, "a"), t.record(ACCEPTED, "b", t.now - 5)]
    await t.router.intake(records)
    assert t.sent == [
        ("ns.ready", b"a", b"payload-a", records[0].headers, t.now),
        ("ns.ready", b"b", b"payload-b", records[1].headers, t.now),
    ]
    assert t.acked == [(ACCEPTED, 0), (ACCEPTED, 1)]
    assert t.partitions == [0, 0]  # the source partition, every hop
    assert len(t.router) == 0


async def test_a_later_event_goes_to_the_largest_tier_that_fits_with_tiered_at() -> None:
    t = Harness()
    rec = t.record(ACCEPTED, "a", t.now + 5_000, headers=[(TIERED_AT, b"1")])
    await t.router.intake([rec])
    topic, key, value, headers, _ = t.sent[0]
    assert (topic, key, value) == ("ns.delay.2s", b"a", b"payload-a")
    assert headers == [*[x for x in rec.headers if x[0] != TIERED_AT], (TIERED_AT, b"1000000")]
    assert t.acked == [(ACCEPTED, 0)]


async def test_a_held_event_keeps_its_offset_and_later_ones_unacked_until_forwarded() -> None:
    t = Harness()
    held = t.record(ACCEPTED, "held", t.now + 600)
    await t.router.intake([held, t.record(ACCEPTED, "now")])
    assert t.topics() == ["ns.ready"]  # "now" went on at once ...
    assert t.acked == []  # ... but its offset waits behind the held one
    assert t.router.wake_at() == t.now + 600
    await t.at(t.now + 599)
    assert t.topics() == ["ns.ready"]
    await t.at(t.now + 1)
    assert t.sent[-1][:2] == ("ns.ready", b"held")
    assert t.acked == [(ACCEPTED, 0), (ACCEPTED, 1)]


async def test_a_tier_partition_parks_its_head_pauses_and_resumes_before_it_is_due() -> None:
    t = Harness()
    tier = ("ns.delay.10s", 3)
    start = t.now
    await t.router.intake([t.record(tier, "a", start + 60_000)], tier_ms=10_000)
    assert t.sent == []
    assert t.paused == {tier}
    assert t.router.wake_at() == start + 10_000 - 1_000  # resume a little ahead
    await t.at(start + 9_000)
    assert t.paused == set()
    assert t.sent == []
    await t.at(start + 10_000)  # due: 50 s remain, so back into the largest tier
    assert t.sent[0][0] == "ns.delay.10s"
    assert t.partitions == [3]
    assert t.acked == [(tier, 0)]


async def test_a_tier_record_is_due_from_tiered_at_when_the_broker_clock_lags() -> None:
    t = Harness()
    tier = ("ns.delay.2s", 0)
    tiered = [(TIERED_AT, str(t.now).encode())]
    rec = t.record(tier, "a", t.now + 2_000, headers=tiered, timestamp=t.now - 500)
    await t.router.intake([rec], tier_ms=2_000)
    await t.at(t.now + 1_999)
    assert t.sent == []
    await t.at(t.now + 1)
    assert t.sent[0][0] == "ns.ready"
    assert all(k != TIERED_AT for k, _ in t.sent[0][3])


async def test_revoked_partitions_forget_what_they_held_and_never_ack_it() -> None:
    t = Harness()
    await t.router.intake([t.record(ACCEPTED, "held", t.now + 500)])
    t.router.revoke([ACCEPTED])
    await t.at(t.now + 1_000)
    assert t.sent == []
    assert t.acked == []
    assert len(t.router) == 0


async def test_re_reading_from_an_earlier_offset_starts_the_partition_over() -> None:
    t = Harness()
    await t.router.intake([t.record(ACCEPTED, "a", t.now + 500), t.record(ACCEPTED, "b")])
    again = t.record(ACCEPTED, "a", t.now + 500, offset=0)  # a seek back to the commit
    await t.router.intake([again])
    assert len(t.router) == 1
    await t.at(t.now + 500)
    assert t.acked == [(ACCEPTED, 0)]


@pytest.mark.parametrize("seed", range(5))
async def test_simulated_traffic_is_never_early_and_everything_arrives(seed: int) -> None:
    """Tier records come back as a broker would hand them on: stamped when they were sent."""
    rng = random.Random(seed)
    t = Harness()
    start = t.now
    due = {f"e{i}": start + rng.randrange(0, 40_000) for i in range(200)}
    batch = [t.record(("ns.accepted", i % 3), k, at) for i, (k, at) in enumerate(due.items())]
    await t.router.intake(batch)
    cursor = 0
    for now in range(start, start + 45_000, 7):
        t.now = now
        await t.router.release_due()
        while cursor < len(t.sent):
            topic, key, _, headers, sent_at = t.sent[cursor]
            cursor += 1
            if topic == "ns.ready":
                continue
            assert key is not None
            tier_ms = int(topic.removeprefix("ns.delay.").removesuffix("s")) * 1000
            kept = [(k, v) for k, v in headers if k not in (h.EVENT_ID, "x-app", h.DELIVER_AT)]
            at = int(h.to_dict(headers)[h.DELIVER_AT])
            stamp = sent_at + rng.randrange(0, 5)
            rec = t.record((topic, len(key) % 2), key.decode(), at, headers=kept, timestamp=stamp)
            await t.router.intake([rec], tier_ms=tier_ms)
    ready = {(s[1] or b"").decode(): s[4] for s in t.sent if s[0] == "ns.ready"}
    assert set(ready) == set(due)
    assert all(ready[k] >= due[k] for k in due), "forwarded before deliver_at"
    assert max(ready[k] - due[k] for k in due) < 10  # the clock steps by 7 ms here
    assert {s[0] for s in t.sent} == {"ns.ready", "ns.delay.1s", "ns.delay.2s", "ns.delay.10s"}
    assert len(t.acked) == len(t.sent), "every record consumed is acked once forwarded"


async def test_run_wakes_for_what_arrives_while_it_sleeps() -> None:
    t = Harness()
    loop = asyncio.get_running_loop()

    def clock_ms() -> int:
        return int(loop.time() * 1000)

    forwarded = asyncio.Event()
    sent_at: list[int] = []

    async def send(
        topic: str, key: bytes | None, value: bytes, headers: h.HeaderList, part: int | None
    ) -> Awaitable[object]:
        sent_at.append(clock_ms())
        forwarded.set()
        return await t.send(topic, key, value, headers, part)

    router = DelayRouter(NAMES, TIERS, send, clock_ms=clock_ms, pause=t.pause, resume=t.resume)
    task = asyncio.create_task(router.run())
    await asyncio.sleep(0.05)  # asleep with nothing to do
    due = clock_ms() + 80
    await router.intake([t.record(ACCEPTED, "a", due)])
    try:
        await asyncio.wait_for(forwarded.wait(), 2)
    finally:
        task.cancel()
    assert sent_at[0] >= due
    assert t.acked == [(ACCEPTED, 0)]
