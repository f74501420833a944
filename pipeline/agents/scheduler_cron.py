"""Cron ticks of the topology's ``schedules:``, fired by the worker that owns ``<ns>.schedules``.

The rules (which ticks, ids, missed-tick policy, DST) are in
:mod:`pipeline.agents.scheduling.cron`; this is the I/O around them, kept free of faust so it
is tested without a broker. A tick becomes an event on ``<ns>.ready`` (it is due now) that looks
like an accepted one: the schedule's payload as Avro single-object bytes of the event's current
schema, the frontend's headers (``msm.deliver_at`` is the tick instant), and the payload's key
field or else the event id as key. Only after the broker acknowledged it is the tick recorded
on ``<ns>.schedules`` (compacted, key = schedule name), so a crash in between fires the tick
again with the same id (at least once; dedup by id downstream), never loses it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline import headers as h
from pipeline.agents.base import Send
from pipeline.agents.scheduling import DEFAULT_GRACE, next_tick, plan_ticks, tick_id
from pipeline.avro import wire
from pipeline.avro.records import RecordError, compile_record
from pipeline.avro.schemas import LoadedSchema, load_schema
from pipeline.client.encoder import key_bytes
from pipeline.errors import ConfigError
from pipeline.topology import Topology
from pipeline.topology.models import ScheduleSpec
from pipeline.topology.topics import TopicNames

log = logging.getLogger(__name__)

MAX_SLEEP_MS = 30_000  # look again at least this often (wall clock jumps, far-off ticks)
LATE_MS = 1000  # ticks fired later than this (catching up, missed) are logged at INFO


@dataclass(frozen=True)
class _Template:
    """What every tick of one schedule carries, encoded once at start-up."""

    spec: ScheduleSpec
    schema: LoadedSchema
    value: bytes
    key: bytes | None


def templates(topology: Topology) -> dict[str, _Template]:
    """Each schedule's payload as its event's current Avro; a payload that does not fit fails."""
    out: dict[str, _Template] = {}
    for name, spec in sorted(topology.schedules.items()):
        event = topology.events[spec.event]
        schema = load_schema(event.schema_path)
        try:
            record = compile_record(schema, subject=f"schedule {name} payload").convert(
                spec.payload
            )
        except RecordError as exc:
            raise ConfigError(f"schedules.{name}.payload: {exc}") from None
        key = key_bytes(record.get(event.key)) if event.key else None
        out[name] = _Template(spec, schema, wire.encode(schema, record), key)
    return out


def encode_last_fired(name: str, tick: datetime) -> bytes:
    ms = int(tick.timestamp() * 1000)
    return json.dumps({"schedule": name, "tick_ms": ms, "event_id": tick_id(name, tick)}).encode()


def decode_last_fired(value: bytes | None) -> datetime | None:
    """The tick of a ``<ns>.schedules`` record; None for a tombstone or an unreadable value."""
    if not value:
        return None
    try:
        ms = json.loads(value)["tick_ms"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(ms, int) or isinstance(ms, bool):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


def _utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class CronFirer:
    """Fires due ticks; ``load`` the last fired ticks first, each time ownership is gained."""

    def __init__(
        self,
        topology: Topology,
        send: Send,
        *,
        clock_ms: Callable[[], int],
        grace: timedelta = DEFAULT_GRACE,
    ) -> None:
        names = TopicNames(topology.namespace)
        self._ready, self._schedules = names.ready, names.schedules
        self._templates = templates(topology)
        self._send = send
        self._clock = clock_ms
        self._grace = grace
        self.last_fired: dict[str, datetime] = {}

    @property
    def schedules(self) -> list[str]:
        return list(self._templates)

    def load(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Replace the state with ``(key, value)`` records of ``<ns>.schedules``, oldest first."""
        last: dict[str, datetime] = {}
        for key, value in records:
            if key is None:
                continue
            name = key.decode("utf-8", "replace")
            tick = decode_last_fired(value)
            if tick is None:
                last.pop(name, None)
            else:
                last[name] = max(tick, last.get(name, tick))
        self.last_fired = last

    async def fire_due(self) -> int:
        """Fire every tick due now, each acknowledged before it is recorded; how many fired."""
        now = _utc_ms(self._clock())
        fired = 0
        for name, template in self._templates.items():
            ticks = plan_ticks(template.spec, self.last_fired.get(name), now, grace=self._grace)
            for tick in ticks:
                await self._fire(name, template, tick)
                self.last_fired[name] = tick
                fired += 1
        return fired

    def next_wake_ms(self) -> int:
        """When to call :meth:`fire_due` again: the next tick, at most :data:`MAX_SLEEP_MS` away."""
        now_ms = self._clock()
        now = _utc_ms(now_ms)
        wake = now_ms + MAX_SLEEP_MS
        for template in self._templates.values():
            tick = next_tick(template.spec, now)
            if tick is not None:
                wake = min(wake, int(tick.timestamp() * 1000))
        return wake

    async def _fire(self, name: str, template: _Template, tick: datetime) -> None:
        event_id = tick_id(name, tick)
        tick_ms = int(tick.timestamp() * 1000)
        now_ms = self._clock()
        fields: dict[str, str | int] = {
            h.EVENT_ID: event_id,
            h.EVENT_TYPE: template.spec.event,
            h.SCHEMA_FINGERPRINT: template.schema.fingerprint_hex,
            h.PUBLISHED_AT: now_ms,
            h.DELIVER_AT: tick_ms,
        }
        key = template.key if template.key is not None else event_id.encode()
        text_key = h.key_text(key)
        if text_key is not None:
            fields[h.KEY] = text_key
        await (await self._send(self._ready, key, template.value, h.encode(fields), None))
        record = encode_last_fired(name, tick)
        await (await self._send(self._schedules, name.encode(), record, [], None))
        late_ms = now_ms - tick_ms
        log.log(
            logging.INFO if late_ms > LATE_MS else logging.DEBUG,
            "schedule %s: fired tick %s as %s, %d ms after the tick",
            name,
            tick.isoformat(),
            event_id,
            late_ms,
        )
