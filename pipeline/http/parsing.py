"""Reading ingress requests: the JSON body, per-event options, and the batch envelope.

Everything wrong with a request is collected as field details (``{"field", "message", "found",
"expected"}``) so a client fixes a request in one round trip; nothing here touches Kafka.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from pipeline.http.errors import ApiError, JsonDetail, bad_request
from pipeline.topology import parse_duration

JSON_TYPES = ("application/json",)
MAX_ID_LENGTH = 200
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_ID_HEADERS = ("Idempotency-Key", "X-MSM-Event-Id")
_BATCH_FIELDS = frozenset({"type", "payload", "key", "id", "delay", "deliver_at"})


def describe(value: object) -> str:
    """A JSON-flavoured description of what was found, short enough for an error detail."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return "string " + json.dumps(value if len(value) <= 40 else value[:37] + "...")
    return "array" if isinstance(value, list) else "object"


def detail(
    field: str, message: str, found: str | None = None, expected: str | None = None
) -> JsonDetail:
    return {"field": field, "message": message, "found": found, "expected": expected}


@dataclass(frozen=True)
class EventRequest:
    """One event to publish, as the request gave it; ``path`` is its place in the body."""

    path: str  # "events[3]" in a batch, "" for a single event (the body is the payload)
    event_type: str
    payload: object
    key: str | None = None
    event_id: str | None = None
    delay: timedelta | None = None
    deliver_at: datetime | None = None

    def field(self, name: str) -> str:
        """The path of one of this event's fields (``payload``, ``type``) in the request."""
        if not self.path:
            return "" if name == "payload" else name
        return f"{self.path}.{name}"


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


async def read_json(request: web.Request, max_bytes: int, timeout_s: float) -> object:
    """The body as JSON; 400 naming line and column when it is not, 413 when it is too big,
    408 when it does not arrive within ``timeout_s`` (a client trickling its body would
    otherwise hold a connection and its buffer for as long as it likes)."""
    if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
        raise bad_request(
            f"the body must be JSON (Content-Type: application/json), "
            f"got {request.content_type or 'no content type'}",
            code="bad_content_type",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large(
            f"the body is {request.content_length} bytes, over the limit of {max_bytes}"
        )
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(f"the body is over the limit of {max_bytes} bytes") from None
    except TimeoutError:
        message = f"the body did not arrive within {timeout_s:g} s"
        raise ApiError(
            408, "request_timeout", message, headers={"Connection": "close"}, retriable=True
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the body is not UTF-8 (byte {exc.start})", code="bad_json") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise bad_request("the body is JSON nested too deeply", code="bad_json") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            [{"line": exc.lineno, "column": exc.colno, "message": exc.msg}],
            code="bad_json",
        ) from None


def _no_constants(name: str) -> object:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def parse_delay(value: object, field: str, errors: list[JsonDetail]) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            errors.append(detail(field, "not a duration", describe(value), str(exc)))
            return None
    errors.append(detail(field, "wrong type", describe(value), "a duration like '30s'"))
    return None


def parse_instant(value: object, field: str, errors: list[JsonDetail]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    errors.append(
        detail(field, "not an ISO 8601 instant", describe(value), "e.g. 2025-01-02T03:04:05Z")
    )
    return None


def parse_text(
    value: object, field: str, errors: list[JsonDetail], max_length: int | None = None
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        errors.append(detail(field, "wrong type", describe(value), "a non-empty string"))
        return None
    if max_length is not None and (len(value) > max_length or not value.isprintable()):
        expected = f"at most {max_length} printable characters"
        errors.append(detail(field, "not a valid id", describe(value), expected))
        return None
    return value


def _option(request: web.Request, header: str, query: str) -> tuple[str, str] | None:
    """The value of an option given as a header or a query parameter, with where it came from."""
    if header in request.headers:
        return f"header {header}", request.headers[header]
    if query in request.query:
        return f"query {query}", request.query[query]
    return None


def single_event(request: web.Request, event_type: str, payload: object) -> EventRequest:
    """``POST /v1/events/{type}``: options from headers (or the query string); 400 if bad."""
    errors: list[JsonDetail] = []
    ids = [(f"header {h}", request.headers[h]) for h in _ID_HEADERS if h in request.headers]
    if "id" in request.query:
        ids.append(("query id", request.query["id"]))
    if len({value for _, value in ids}) > 1:
        errors.append(detail("id", "the event id is given twice, with different values"))
    event_id = parse_text(ids[0][1], ids[0][0], errors, MAX_ID_LENGTH) if ids else None
    key = delay = deliver_at = None
    if (option := _option(request, "X-MSM-Key", "key")) is not None:
        key = parse_text(option[1], option[0], errors)
    if (option := _option(request, "X-MSM-Delay", "delay")) is not None:
        delay = parse_delay(option[1], option[0], errors)
    if (option := _option(request, "X-MSM-Deliver-At", "deliver_at")) is not None:
        deliver_at = parse_instant(option[1], option[0], errors)
    if delay is not None and deliver_at is not None:
        errors.append(detail("delay", "give either a delay or deliver_at, not both"))
    if errors:
        raise bad_request("invalid event options", errors)
    return EventRequest("", event_type, payload, key, event_id, delay, deliver_at)


def batch_events(body: object) -> tuple[list[EventRequest], list[JsonDetail]]:
    """``{"events": [...]}``: the well-formed entries and the problems of every other one."""
    if not isinstance(body, dict) or set(body) != {"events"}:
        raise bad_request(
            'a batch is {"events": [{"type": ..., "payload": {...}}, ...]}',
            [detail("", "wrong shape", describe(body), 'an object with only "events"')],
        )
    entries = body["events"]
    if not isinstance(entries, list) or not entries:
        raise bad_request(
            "events must be a non-empty list",
            [detail("events", "wrong type", describe(entries), "a non-empty array")],
        )
    events: list[EventRequest] = []
    errors: list[JsonDetail] = []
    for index, entry in enumerate(entries):
        event = _batch_entry(f"events[{index}]", entry, errors)
        if event is not None:
            events.append(event)
    return events, errors


def _batch_entry(path: str, entry: object, errors: list[JsonDetail]) -> EventRequest | None:
    if not isinstance(entry, dict):
        errors.append(detail(path, "wrong type", describe(entry), "an object"))
        return None
    for name in sorted(set(entry) - _BATCH_FIELDS):
        known = ", ".join(sorted(_BATCH_FIELDS))
        errors.append(detail(f"{path}.{name}", "unknown field", None, known))
    event_type = parse_text(entry.get("type"), f"{path}.type", errors)
    if "type" not in entry:
        errors.append(detail(f"{path}.type", "required", None, "an event type"))
    if "payload" not in entry:
        errors.append(detail(f"{path}.payload", "required", None, "an object"))
    key = parse_text(entry.get("key"), f"{path}.key", errors)
    event_id = parse_text(entry.get("id"), f"{path}.id", errors, MAX_ID_LENGTH)
    delay = parse_delay(entry.get("delay"), f"{path}.delay", errors)
    deliver_at = parse_instant(entry.get("deliver_at"), f"{path}.deliver_at", errors)
    if entry.get("delay") is not None and entry.get("deliver_at") is not None:
        errors.append(detail(f"{path}.delay", "give either delay or deliver_at, not both"))
    if event_type is None or "payload" not in entry:
        return None  # option errors are reported, but the payload is still validated
    return EventRequest(path, event_type, entry["payload"], key, event_id, delay, deliver_at)


def traceparent(request: web.Request) -> str | None:
    """A valid W3C ``traceparent`` to pass on; an invalid one is ignored, as the spec asks."""
    value = request.headers.get("traceparent", "").strip().lower()
    return value if _TRACEPARENT.fullmatch(value) and not value.startswith("ff") else None
