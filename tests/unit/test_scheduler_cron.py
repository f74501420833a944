"""Cron firing without a broker: fake clock and produces; ownership hand-over with fake reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline import headers as h
from pipeline.agents.scheduler_cron import (
    MAX_SLEEP_MS,
    CronFirer,
    decode_last_fired,
    encode_last_fired,
    templates,
)
from pipeline.agents.scheduler_cron_owner import CronOwner, Records
from pipeline.agents.scheduling import tick_id
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas
from pipeline.errors import ConfigError
from pipeline.topology import Topology, load_topology
from tests.fixtures.topologies import minimal, write_topology

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def topology(tmp_path: Path, **schedules: dict[str, Any]) -> Topology:
    doc = minimal()
    doc["schedules"] = schedules
    return load_topology(write_topology(tmp_path, doc))


class Sends:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes, h.HeaderList]] = []
        self.gate: asyncio.Event | None = None  # when set, each produce waits for it

    async def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: h.HeaderList,
        partition: int | None,
    ) -> Awaitable[object]:
        assert partition is None  # ticks go where their key hashes
        self.records.append((topic, key, value, headers))
        gate = self.gate
        if gate is None:
            done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(gate.wait())

    def ticks(self) -> list[datetime]:
        return [
            datetime.fromtimestamp(int(h.to_dict(r[3])[h.DELIVER_AT]) / 1000, UTC)
            for r in self.records
            if r[0] == "msm-test.ready"
        ]


def firer(top: Topology, sends: Sends, now: list[datetime]) -> CronFirer:
    return CronFirer(top, sends, clock_ms=lambda: ms(now[0]))


def test_each_tick_is_an_accepted_like_event_then_recorded(tmp_path: Path) -> None:
    top = topology(
        tmp_path,
        thing={
            "event": "thing.created",
            "cron": "*/10 * * * *",
            "payload": {"id": "t-1", "size": 3},
        },
    )
    sends, now = Sends(), [T0]
    cron = firer(top, sends, now)
    cron.load([(b"thing", encode_last_fired("thing", T0 - timedelta(minutes=10)))])
    assert asyncio.run(cron.fire_due()) == 1
    (topic, key, value, headers), (rtopic, rkey, rvalue, _) = sends.records
    event_id = tick_id("thing", T0)
    schemas = EventSchemas.load(top.events["thing.created"].schema_path)
    assert topic == "msm-test.ready"
    assert key == b"t-1"  # the event's key field
    assert wire.decode(value, schemas) == {"id": "t-1", "size": 3, "colour": "blue"}
    assert h.to_dict(headers) == {
        h.EVENT_ID: event_id.encode(),
        h.EVENT_TYPE: b"thing.created",
        h.SCHEMA_FINGERPRINT: schemas.current.fingerprint_hex.encode(),
        h.PUBLISHED_AT: str(ms(T0)).encode(),
        h.DELIVER_AT: str(ms(T0)).encode(),
        h.KEY: b"t-1",
    }
    assert (rtopic, rkey, decode_last_fired(rvalue)) == ("msm-test.schedules", b"thing", T0)
    assert cron.last_fired == {"thing": T0}


def test_a_restart_reads_the_last_fired_tick_and_fires_nothing_twice(tmp_path: Path) -> None:
    top = topology(
        tmp_path, hb={"event": "other.happened", "cron": "* * * * * *", "payload": {"key": "k"}}
    )
    sends, now = Sends(), [T0]
    first = firer(top, sends, now)
    first.load([(b"hb", encode_last_fired("hb", T0 - timedelta(seconds=1)))])
    asyncio.run(first.fire_due())
    now[0] = T0 + timedelta(seconds=3)
    asyncio.run(first.fire_due())
    recorded: Records = [(r[1], r[2]) for r in sends.records if r[0] == "msm-test.schedules"]
    second = firer(top, sends, now)
    second.load(recorded)
    now[0] = T0 + timedelta(seconds=5)
    asyncio.run(second.fire_due())
    assert sends.ticks() == [T0 + timedelta(seconds=s) for s in range(6)]
    assert second.next_wake_ms() == ms(T0 + timedelta(seconds=6))


@pytest.mark.parametrize(("missed", "fired"), [("skip", []), ("fire_once", [T0])])
def test_ticks_missed_while_no_worker_ran_follow_the_policy(
    tmp_path: Path, missed: str, fired: list[datetime]
) -> None:
    spec = {
        "event": "other.happened",
        "cron": "0 * * * *",
        "payload": {"key": "k"},
        "missed": missed,
    }
    top = topology(tmp_path, hourly=spec)
    # down from 09:30 to 12:30: 10:00, 11:00 and 12:00 were missed
    sends, now = Sends(), [T0 + timedelta(minutes=30)]
    cron = firer(top, sends, now)
    cron.load([(b"hourly", encode_last_fired("hourly", T0 - timedelta(hours=3)))])
    asyncio.run(cron.fire_due())
    assert sends.ticks() == fired
    assert cron.next_wake_ms() == ms(now[0]) + MAX_SLEEP_MS  # the next tick is 30 min off


def test_state_takes_the_latest_record_per_schedule_and_ignores_junk(tmp_path: Path) -> None:
    top = topology(
        tmp_path, a={"event": "other.happened", "cron": "@daily", "payload": {"key": "k"}}
    )
    cron = firer(top, Sends(), [T0])
    cron.load(
        [
            (b"a", encode_last_fired("a", T0)),
            (b"a", encode_last_fired("a", T0 - timedelta(days=1))),  # an older copy, re-sent
            (b"gone", encode_last_fired("gone", T0)),
            (b"gone", None),  # tombstone
            (None, b"{}"),
            (b"b", b"not json"),
        ]
    )
    assert cron.last_fired == {"a": T0}
    assert decode_last_fired(b'{"tick_ms": true}') is None


def test_a_payload_that_does_not_fit_its_schema_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"schedules\.bad\.payload\.id"):
        templates(
            topology(
                tmp_path, bad={"event": "thing.created", "cron": "@daily", "payload": {"id": 5}}
            )
        )


async def test_the_owner_fires_only_while_owning_and_a_revoke_waits_for_the_record(
    tmp_path: Path,
) -> None:
    top = topology(
        tmp_path, hb={"event": "other.happened", "cron": "* * * * * *", "payload": {"key": "k"}}
    )
    sends, now = Sends(), [T0]
    reads: list[int] = []

    async def read() -> Records:
        reads.append(1)
        return [(b"hb", encode_last_fired("hb", now[0] - timedelta(seconds=1)))]

    owner = CronOwner(firer(top, sends, now), "msm-test.schedules", read, lambda: ms(now[0]))
    task = asyncio.create_task(owner.run())
    try:
        await asyncio.sleep(0.01)
        assert sends.records == []  # not the owner yet
        sends.gate = asyncio.Event()
        owner.assigned([_TP("msm-test.schedules", 0)])
        await asyncio.sleep(0.01)
        assert reads == [1]
        assert len(sends.records) == 1  # the tick's event is being produced
        revoking = asyncio.create_task(owner.revoked())
        await asyncio.sleep(0.01)
        assert not revoking.done()  # waits for the tick to be recorded
        sends.gate.set()
        await asyncio.wait_for(revoking, 1)
        assert [r[0] for r in sends.records] == ["msm-test.ready", "msm-test.schedules"]
        now[0] += timedelta(seconds=5)
        await asyncio.sleep(0.01)
        assert len(sends.records) == 2  # no longer the owner: nothing more fires
    finally:
        task.cancel()


class _TP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
