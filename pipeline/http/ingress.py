"""The HTTP ingress: ``POST /v1/events/{type}`` and ``POST /v1/events``, plus health routes.

HTTP is just another publisher: every event is validated against its current Avro schema (a
400 lists every bad field), published through :class:`~pipeline.client.AsyncPublisher` (Avro
single-object, acks=all, idempotent), and answered 202 with the ids only once Kafka acknowledged
every one of them. A batch is all-or-nothing up to Kafka: if any event is invalid, nothing is
published. If Kafka does not acknowledge in time the answer is 503 with ``Retry-After``; resending
with the same ids (``Idempotency-Key``, or ``id`` in a batch) lets MSM recognise duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from aiohttp import hdrs, web

from pipeline.avro.records import RecordError
from pipeline.client import AsyncPublisher, PublishArgumentError, PublishError, UnknownEventError
from pipeline.client.encoder import OutgoingEvent
from pipeline.http import parsing
from pipeline.http.auth import Decision, TokenStore, Verdict
from pipeline.http.errors import ApiError, JsonDetail
from pipeline.http.health import ReadinessCheck
from pipeline.http.parsing import EventRequest, detail
from pipeline.http.settings import HttpSettings

log = logging.getLogger(__name__)

_ACK_GRACE_S = 5.0  # beyond delivery.timeout.ms, in case a delivery report is late


class Ingress:
    """The request handlers; one per app, sharing the app's publisher."""

    def __init__(
        self,
        publisher: AsyncPublisher,
        tokens: TokenStore,
        settings: HttpSettings,
        ready: ReadinessCheck,
    ) -> None:
        self.publisher = publisher
        self.tokens = tokens
        self.settings = settings
        self.ready = ready
        self.known = sorted(publisher.topology.events)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/events/{type}", self.post_one),
            web.post("/v1/events", self.post_batch),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
        ]

    async def post_one(self, request: web.Request) -> web.Response:
        event_type = request.match_info["type"]
        decision = self.tokens.authorize(request.headers.get(hdrs.AUTHORIZATION), [event_type])
        _refuse_unauthenticated(decision)
        if event_type not in self.publisher.topology.events:
            raise self._unknown(event_type)
        _refuse_forbidden(decision, [])
        body = await parsing.read_json(
            request, self.settings.max_request_bytes, self.settings.body_timeout_s
        )
        event = parsing.single_event(request, event_type, body)
        ids = await self._accept([event], [], parsing.traceparent(request))
        return web.json_response({"ids": ids}, status=202)

    async def post_batch(self, request: web.Request) -> web.Response:
        authorization = request.headers.get(hdrs.AUTHORIZATION)
        _refuse_unauthenticated(self.tokens.authorize(authorization, ()))
        body = await parsing.read_json(
            request, self.settings.max_request_bytes, self.settings.body_timeout_s
        )
        events, errors = parsing.batch_events(body)
        # Unknown types are a 400 below, not a 403 for a token that could never publish them.
        types = {e.event_type for e in events if e.event_type in self.publisher.topology.events}
        _refuse_forbidden(self.tokens.authorize(authorization, types), events)
        ids = await self._accept(events, errors, parsing.traceparent(request))
        return web.json_response({"ids": ids}, status=202)

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        result = await self.ready()
        if result.ready:
            return web.json_response({"status": "ready"})
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        raise ApiError(503, "not_ready", result.message, result.details, retry, retriable=True)

    async def _accept(
        self, events: Sequence[EventRequest], errors: list[JsonDetail], trace: str | None
    ) -> list[str]:
        encoded = self._validate(events, errors, trace)
        await self._publish(encoded)
        log.debug("HTTP ingress published %d events", len(encoded))
        return [e.event_id for e in encoded]

    def _validate(
        self, events: Sequence[EventRequest], errors: list[JsonDetail], trace: str | None
    ) -> list[OutgoingEvent]:
        """Encode every event; raise 400 (or 413 if size is all that is wrong) listing all."""
        encoded: list[OutgoingEvent] = []
        oversized: list[JsonDetail] = []
        for event in events:
            try:
                encoded.append(
                    self.publisher.encoder.encode(
                        event.event_type,
                        event.payload,
                        key=event.key,
                        event_id=event.event_id,
                        delay=event.delay,
                        deliver_at=event.deliver_at,
                        traceparent=trace,
                    )
                )
            except RecordError as exc:
                base = event.field("payload")
                errors.extend(
                    detail(_join(base, e.path), e.message, e.found, e.expected) for e in exc.errors
                )
            except UnknownEventError:
                expected = "one of: " + ", ".join(self.known)
                errors.append(detail(event.field("type"), "unknown event type", None, expected))
            except PublishArgumentError as exc:
                errors.append(detail(event.path or "", str(exc)))
            except PublishError as exc:  # the encoder's only one: over the event's max_bytes
                oversized.append(detail(event.field("payload"), str(exc)))
        if errors:
            count = len(errors) + len(oversized)
            raise ApiError(400, "invalid", _problems(count), [*errors, *oversized])
        if oversized:
            raise ApiError(413, "too_large", _problems(len(oversized)), oversized)
        return encoded

    async def _publish(self, encoded: Sequence[OutgoingEvent]) -> None:
        timeout_s = self.settings.kafka_timeout_s + _ACK_GRACE_S
        try:
            async with asyncio.timeout(timeout_s):
                await self.publisher.publish_encoded(encoded)
        except TimeoutError:
            raise self._unavailable(
                f"Kafka did not acknowledge within {timeout_s:g} s", [e.event_id for e in encoded]
            ) from None
        except PublishError as exc:
            ids = list(exc.event_ids) or [e.event_id for e in encoded]
            if exc.retriable:
                raise self._unavailable(str(exc), ids) from None
            log.error("HTTP ingress: %s", exc)
            raise ApiError(502, "kafka_refused", str(exc), [{"id": i} for i in ids]) from None

    def _unavailable(self, message: str, ids: Iterable[str]) -> ApiError:
        log.warning("HTTP ingress answers 503: %s", message)
        return ApiError(
            503,
            "kafka_unavailable",
            message + "; resend with the same ids, duplicates are recognised",
            [{"id": i} for i in ids],
            {"Retry-After": str(self.settings.retry_after_s)},
            retriable=True,
        )

    def _unknown(self, event_type: str) -> ApiError:
        expected = "one of: " + ", ".join(self.known)
        found = parsing.describe(event_type)
        info = {**detail("type", "unknown event type", found, expected), "known": self.known}
        return ApiError(404, "unknown_event_type", f"unknown event type {event_type!r}", [info])


def _problems(count: int) -> str:
    noun = "problem" if count == 1 else "problems"
    return f"{count} {noun} in the request; nothing was published"


def _join(base: str, path: str) -> str:
    if not base or not path:
        return base or path
    return base + path if path.startswith("[") else f"{base}.{path}"


def _refuse_unauthenticated(decision: Decision) -> None:
    if decision.verdict in (Verdict.MISSING, Verdict.INVALID):
        missing = decision.verdict is Verdict.MISSING
        challenge = 'Bearer realm="msm"' if missing else 'Bearer realm="msm", error="invalid_token"'
        message = "a bearer token is required" if missing else "the bearer token is not valid"
        code = "missing_token" if missing else "invalid_token"
        raise ApiError(401, code, message, (), {"WWW-Authenticate": challenge})


def _refuse_forbidden(decision: Decision, events: Sequence[EventRequest]) -> None:
    if decision.verdict is not Verdict.FORBIDDEN:
        return
    refused = set(decision.forbidden)
    details: list[JsonDetail] = [
        detail(e.field("type"), "this token may not publish this event type", e.event_type)
        for e in events
        if e.event_type in refused
    ] or [detail("type", "this token may not publish this event type", t) for t in sorted(refused)]
    message = "this token may not publish " + ", ".join(sorted(refused))
    raise ApiError(403, "forbidden", message, details)
