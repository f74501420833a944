"""One CDC source at work: the table's change stream (and snapshot chunks) into Kafka, paced.

Each round reads a batch from the replication stream, publishes its changes to the event's
ingress topic (the frontend validates them like any event), waits until Kafka has every one,
records the last complete transaction's end LSN in ``<ns>.cdc`` and only then acknowledges it
to the slot. A crash anywhere in a round re-sends at most that round (same event ids); a crash
between the record and the slot ack re-sends nothing, because transactions the slot sends again
below the recorded position are skipped.

Snapshots interleave with the stream without a gap and without ever publishing a row older than
one already published (the DBLog watermark method): a chunk is read, then a transactional
logical message (the watermark) is committed. Every change the stream brings before that
watermark is published as usual and its keys are struck from the chunk; at the watermark, the
chunk's remaining rows are published. Those rows had no change between their read and the
watermark, so each equals the latest state the stream has published for its key, and whatever
the stream brings later is newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pipeline import headers as h
from pipeline.avro.records import RecordError
from pipeline.avro.schemas import load_schema
from pipeline.cdc import replication
from pipeline.cdc.backlog import Backlog
from pipeline.cdc.changes import Change, ChangeBuilder
from pipeline.cdc.errors import CdcError
from pipeline.cdc.pace import FULL, Pace, Pacer, decide
from pipeline.cdc.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Relation,
    Truncate,
    Update,
    decode,
    format_lsn,
)
from pipeline.cdc.snapshot import SnapshotReader
from pipeline.cdc.state import (
    SnapshotJob,
    SourceState,
    SourceStatus,
    job_record,
    position_record,
    status_record,
)
from pipeline.client.encoder import EventEncoder
from pipeline.client.errors import PublishError
from pipeline.metrics import process_metrics
from pipeline.topology import Topology
from pipeline.topology.cdc import CdcSourceSpec

log = logging.getLogger(__name__)

WATERMARK = "msm.cdc.watermark"
READ_MAX = 500
READ_MIN = 10
READ_SHARE_S = 0.2
READ_TIMEOUT_S = 0.2
PACE_EVERY_S = 1.0
STATUS_EVERY_S = 5.0
KEEPALIVE_EVERY_S = 5.0

Send = Callable[[str, bytes | None, bytes, h.HeaderList, int | None], Awaitable[Awaitable[object]]]


@dataclass
class _Window:
    """A snapshot chunk waiting for its watermark; ``touched`` keys changed since it was read."""

    id: str
    job: SnapshotJob
    rows: list[list[str | None]]
    touched: set[str] = field(default_factory=set)


class CdcSource:
    def __init__(
        self,
        spec: CdcSourceSpec,
        topology: Topology,
        send: Send,
        state_topic: str,
        clock_ms: Callable[[], int],
    ) -> None:
        self.spec = spec
        self._namespace = topology.namespace
        self._send = send
        self._state_topic = state_topic
        self._clock_ms = clock_ms
        self._encoder = EventEncoder(topology)
        self._ingress = self._encoder.codec(spec.event).topic
        schema = load_schema(topology.events[spec.event].schema_path)
        self._builder = ChangeBuilder(spec.name, spec.table, spec.key, schema)
        self._backlog = Backlog(topology, spec.event)
        self._pacer = Pacer(spec.rate_limit)
        self._pace: Pace = FULL
        self._position: int | None = None
        self._jobs: dict[str, SnapshotJob] = {}
        self._window: _Window | None = None
        self._begin: Begin | None = None
        self._skipping = False
        self._events_total = 0
        self._slot_lag: int | None = None
        self._error: str | None = None
        self._stop = asyncio.Event()
        self._metrics = process_metrics()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pace(self) -> Pace:
        return self._pace

    @property
    def position(self) -> int | None:
        return self._position

    def offer(self, job: SnapshotJob) -> None:
        """A snapshot requested while running (a record on ``<ns>.cdc``); known ids are ours."""
        if job.id not in self._jobs and job.state == "requested":
            log.info(
                "cdc %s: snapshot %s requested (subscriber %s)", self.name, job.id, job.subscriber
            )
            self._jobs[job.id] = job

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def restart(self, state: SourceState) -> None:
        """Ownership gained: start from what ``<ns>.cdc`` says (another owner may have moved it)."""
        self._stop.clear()
        self._position = state.lsn
        self._jobs = dict(state.jobs)
        self._window = None

    def failed(self, error: BaseException) -> None:
        self._error = f"{type(error).__name__}: {error}"

    async def rest(self, seconds: float) -> None:
        """Waits ``seconds`` or until stopped."""
        await self._sleep(seconds)

    async def run(self) -> None:
        """Until :meth:`stop`; raises what stops it (the owner retries with back-off)."""
        dsn = self._dsn()
        slot = self.spec.slot_for(self._namespace)
        publication = self.spec.publication_for(self._namespace)
        info = await asyncio.to_thread(self._prepare, dsn, slot, publication)
        fresh = self._position is None and not self._jobs
        if info.created and self.spec.snapshot.initial and fresh:
            await self._request_initial_snapshot()
        reader = SnapshotReader(dsn, self.spec.table, self.spec.key)
        columns = await asyncio.to_thread(reader.open)
        self._builder.use_columns([(c.name, c.type_oid) for c in columns])
        stream = replication.ReplicationStream(dsn, slot, publication, self._position or 0)
        await asyncio.to_thread(stream.open)
        self._error = None
        log.info(
            "cdc %s: streaming %s from slot %s at %s",
            self.name,
            self.spec.table,
            slot,
            format_lsn(self._position) if self._position else "the slot's position",
        )
        try:
            await self._loop(dsn, stream, reader)
        finally:
            self._window = None  # its watermark may come again; a new window is read then
            await asyncio.to_thread(stream.close)
            await asyncio.to_thread(reader.close)

    def _dsn(self) -> str:
        dsn = os.environ.get(self.spec.dsn_env)
        if not dsn:
            raise CdcError(
                f"cdc.{self.name}.dsn_env: environment variable {self.spec.dsn_env} is not set "
                "(a libpq connection string, e.g. 'host=db dbname=app user=msm_cdc')"
            )
        return dsn

    def _prepare(self, dsn: str, slot: str, publication: str) -> replication.SlotInfo:
        """Publication and slot exist (created on first start); blocking."""
        replication.ensure_publication(dsn, publication, self.spec.table)
        return replication.ensure_slot(dsn, slot)

    async def _loop(
        self, dsn: str, stream: replication.ReplicationStream, reader: SnapshotReader
    ) -> None:
        next_pace = next_status = next_keepalive = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_pace:
                await self._update_pace()
                next_pace = now + PACE_EVERY_S
            if now >= next_status:
                await self._publish_status(dsn)
                next_status = now + STATUS_EVERY_S
            if self._pace.paused:
                if now >= next_keepalive:
                    await asyncio.to_thread(stream.keepalive)
                    next_keepalive = now + KEEPALIVE_EVERY_S
                await self._sleep(0.25)
                continue
            wait = self._pacer.wait_s(now)
            if wait > 0:
                await self._sleep(min(wait, PACE_EVERY_S))
                continue
            if self._window is None:
                await self._open_window(dsn, reader)
            # A read is at most a fifth of a second's worth at the current pace, so the pacer,
            # which spaces reads after the fact, never lets a whole burst through at once.
            share = int(self._pacer.rate_per_s * self._pace.factor * READ_SHARE_S)
            messages = await asyncio.to_thread(
                stream.read, max(READ_MIN, min(READ_MAX, share)), READ_TIMEOUT_S
            )
            if messages:
                published = await self._handle(messages, stream)
                self._pacer.took(published, self._pace, time.monotonic())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _handle(
        self, messages: list[tuple[int, bytes]], stream: replication.ReplicationStream
    ) -> int:
        pending: list[Awaitable[object]] = []
        done_to: int | None = None
        progressed: SnapshotJob | None = None
        for _lsn, payload in messages:
            message = decode(payload)
            if isinstance(message, Relation):
                self._builder.relation(message)
            elif isinstance(message, Begin):
                self._builder.begin(message)
                self._begin = message
                self._skipping = self._position is not None and message.final_lsn < self._position
            elif isinstance(message, Insert | Update | Delete):
                if self._window is not None:
                    self._window.touched |= self._builder.keys_of(message)
                for change in [] if self._skipping else self._builder.changes(message):
                    pending.append(await self._publish(change, None))
            elif isinstance(message, LogicalMessage):
                window = self._window
                if message.prefix == WATERMARK and window and message.content == window.id.encode():
                    progressed = await self._close_window(window, message.lsn, pending)
            elif isinstance(message, Commit):
                done_to = message.end_lsn
            elif isinstance(message, Truncate):
                log.warning("cdc %s: TRUNCATE is not captured (no change events)", self.name)
        if pending:
            await asyncio.gather(*pending)  # every event of the round is in Kafka
        if progressed is not None:
            await (await self._send(self._state_topic, *job_record(progressed), [], None))
            self._jobs[progressed.id] = progressed
        if done_to is not None and (self._position is None or done_to > self._position):
            key, value = position_record(self.name, done_to, self._clock_ms())
            await (await self._send(self._state_topic, key, value, [], None))
            self._position = done_to
            await asyncio.to_thread(stream.ack, done_to)
        return len(pending)

    async def _publish(self, change: Change, only: str | None) -> Awaitable[object]:
        try:
            out = self._encoder.encode(
                self.spec.event, change.payload, key=change.key, event_id=change.event_id
            )
            value = out.value
            headers = [
                (k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in out.headers
            ]
        except (RecordError, PublishError) as exc:
            # The frontend rejects it to <ns>.rejected with the same reason: kept, replayable.
            log.warning(
                "cdc %s: change %s does not fit the event: %s", self.name, change.event_id, exc
            )
            value = json.dumps(change.payload, default=str).encode()
            headers = [
                (h.EVENT_ID, change.event_id.encode()),
                (h.EVENT_TYPE, self.spec.event.encode()),
                (h.CONTENT_TYPE, b"application/json"),
            ]
        if only is not None:
            headers.append((h.ONLY, only.encode()))
        self._events_total += 1
        self._metrics.cdc_events.labels(self.name, change.op).inc()
        return await self._send(self._ingress, change.key, value, headers, None)

    async def _open_window(self, dsn: str, reader: SnapshotReader) -> None:
        job = self._next_job()
        if job is None:
            return
        rows = await asyncio.to_thread(reader.chunk, job.after_key, self.spec.snapshot.chunk_rows)
        if not rows:
            finished = job.finished(self._clock_ms())
            await (await self._send(self._state_topic, *job_record(finished), [], None))
            self._jobs[job.id] = finished
            log.info("cdc %s: snapshot %s done, %d rows", self.name, job.id, job.rows)
            return
        window = _Window(uuid.uuid4().hex, job, rows)
        await asyncio.to_thread(replication.emit_watermark, dsn, WATERMARK, window.id)
        self._window = window

    async def _close_window(
        self, window: _Window, lsn: int, pending: list[Awaitable[object]]
    ) -> SnapshotJob:
        self._window = None
        at = self._begin.commit_time if self._begin is not None else None
        if at is None:
            raise CdcError(f"cdc {self.name}: a watermark outside a transaction")
        key_index = [c for c, _ in self._builder.columns].index(self.spec.key)
        sent = 0
        for values in window.rows:
            if values[key_index] in window.touched:
                continue  # the stream just published this key's newer state
            change = self._builder.snapshot_row(window.job.id, values, lsn, at)
            pending.append(await self._publish(change, window.job.subscriber))
            sent += 1
        self._metrics.cdc_snapshot_rows.labels(self.name).inc(sent)
        last_key = window.rows[-1][key_index]
        return window.job.progressed(last_key, sent, self._clock_ms())

    def _next_job(self) -> SnapshotJob | None:
        waiting = [j for j in self._jobs.values() if j.state in ("requested", "running")]
        return min(waiting, key=lambda j: (j.requested_at_ms, j.id), default=None)

    async def _request_initial_snapshot(self) -> None:
        now = self._clock_ms()
        job = SnapshotJob("initial", self.name, None, requested_at_ms=now, updated_at_ms=now)
        await (await self._send(self._state_topic, *job_record(job), [], None))
        self._jobs[job.id] = job
        log.info("cdc %s: new slot, initial snapshot of %s first", self.name, self.spec.table)

    async def _update_pace(self) -> None:
        try:
            backlog = await asyncio.to_thread(self._backlog.measure)
        except Exception as exc:
            log.debug("cdc %s: backlog not measured: %s", self.name, exc)
            return
        before = self._pace
        self._pace = decide(backlog, self.spec.lag, before)
        if self._pace.state != before.state:
            await self.write_status()  # a change of pace shows at once, not at the next tick
            log.info(
                "cdc %s: %s (backlog %d; slow at %d, pause at %d)",
                self.name,
                self._pace.state,
                backlog,
                self.spec.lag.slow,
                self.spec.lag.pause,
            )
        self._metrics.cdc_pace.labels(self.name).set(self._pace.factor)
        self._metrics.cdc_paused.labels(self.name).set(1 if self._pace.paused else 0)
        self._metrics.cdc_backlog.labels(self.name).set(backlog)

    async def _publish_status(self, dsn: str) -> None:
        try:
            wal = await asyncio.to_thread(replication.current_wal_lsn, dsn)
            self._slot_lag = max(0, wal - (self._position or wal))
            self._metrics.cdc_slot_lag_bytes.labels(self.name).set(self._slot_lag)
        except CdcError as exc:
            log.debug("cdc %s: WAL position not read: %s", self.name, exc)
        await self.write_status()

    async def write_status(self) -> None:
        status = SourceStatus(
            source=self.name,
            pace=self._pace.state,
            factor=self._pace.factor,
            backlog=self._pace.backlog,
            lsn=format_lsn(self._position) if self._position is not None else None,
            slot_lag_bytes=self._slot_lag,
            events_total=self._events_total,
            updated_at_ms=self._clock_ms(),
            error=self._error,
        )
        await (await self._send(self._state_topic, *status_record(status), [], None))
