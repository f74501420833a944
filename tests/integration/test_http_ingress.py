"""HTTP ingress against the real broker: 202 only after the ack, and every refusal as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from yarl import URL

from pipeline import headers as h
from pipeline.avro import wire
from pipeline.avro.schemas import EventSchemas, load_schema
from pipeline.http import HttpSettings, TokenStore, start_server
from pipeline.http.auth import parse_tokens_text
from pipeline.http.server import OPEN_WARNING
from pipeline.topology import Topology
from tests.publish_support import SCHEMAS, consume, file_uploaded, ingress_topics, load

FILE_SCHEMAS = EventSchemas.load(
    SCHEMAS / "file_uploaded.v2.avsc", [SCHEMAS / "file_uploaded.v1.avsc"]
)
USER_SCHEMA = load_schema(SCHEMAS / "user_deleted.avsc")
USER = {"user_id": "u-1", "deleted_at": "2025-01-01T00:00:00Z", "reason": "ABUSE"}
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECRET = f"tok-{uuid.uuid4().hex}"  # may publish anything; must appear in no log or body
FILE_ONLY = f"file-only-{uuid.uuid4().hex}"  # may publish file.uploaded only


@dataclass(frozen=True)
class Env:
    topology: Topology
    topics: dict[str, str]
    bootstrap: str


@pytest.fixture
def env(
    tmp_path: Path, admin: AdminClient, unique_name: Callable[[str], str], kafka_bootstrap: str
) -> Iterator[Env]:
    """A fresh namespace whose ingress topics exist (file.uploaded: 3 partitions, 2048 bytes)."""
    topology = load(tmp_path, unique_name("http"), kafka_bootstrap)
    with ingress_topics(admin, topology) as topics:
        yield Env(topology, topics, kafka_bootstrap)


@contextlib.asynccontextmanager
async def serving(
    topology: Topology,
    settings: HttpSettings | None = None,
    tokens: TokenStore | None = None,
    extra_routes: list[web.RouteDef] | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """The server on a free port of 127.0.0.1 (open unless ``tokens``) and a client for it."""
    server = await start_server(
        topology,
        settings or HttpSettings(port=0),
        tokens=tokens or TokenStore(),
        extra_routes=extra_routes or [],
    )
    try:
        async with aiohttp.ClientSession(server.url) as session:
            yield session
    finally:
        await server.stop()


async def high_watermarks(bootstrap: str, topic: str, partitions: int) -> int:
    """Records in the log now, asked of the leaders (acknowledged ones only), with no waiting."""

    def ask() -> int:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4()}"})
        try:
            return sum(_high(consumer, TopicPartition(topic, p)) for p in range(partitions))
        finally:
            consumer.close()

    return await asyncio.to_thread(ask)


def _high(consumer: Consumer, partition: TopicPartition) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException as exc:  # leadership of a new topic may not be known yet
            settling = exc.args[0].code() == KafkaError.NOT_LEADER_FOR_PARTITION
            if not (settling or exc.args[0].retriable()) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def headers_of(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    assert isinstance(raw, list)
    return {name: value for name, value in raw if isinstance(value, bytes)}


def fields_of(body: dict[str, object]) -> list[object]:
    details = body["details"]
    assert isinstance(details, list)
    return [d["field"] for d in details]


async def test_single_event_is_acknowledged_before_202(env: Env) -> None:
    payload = file_uploaded(file_id="f-1")
    async with serving(env.topology) as client:
        response = await client.post(
            "/v1/events/file.uploaded",
            json=payload,
            headers={"Idempotency-Key": "evt-1", "X-MSM-Delay": "30s", "traceparent": TRACE},
        )
        assert response.status == 202, await response.text()
        assert await response.json() == {"ids": ["evt-1"]}
        # Acknowledged means already in the log: count it at once, before any consumer waits.
        assert await high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 1
    [message] = await asyncio.to_thread(consume, env.bootstrap, env.topics["file.uploaded"], 1)
    headers = headers_of(message)
    assert headers[h.EVENT_ID] == b"evt-1"
    assert headers[h.EVENT_TYPE] == b"file.uploaded"
    assert headers[h.TRACEPARENT] == TRACE.encode()
    deliver_at = h.get_int(headers, h.DELIVER_AT)
    assert deliver_at is not None
    assert deliver_at > int(datetime.now(UTC).timestamp() * 1000) + 20_000
    assert message.key() == b"f-1"  # the topology's key field
    value = message.value()
    assert isinstance(value, bytes)
    record = wire.decode(value, FILE_SCHEMAS)
    assert isinstance(record, dict)
    assert record["file_id"] == "f-1"
    assert record["size"] == payload["size"]


async def test_batch_is_acknowledged_before_202_with_ids_in_order(env: Env) -> None:
    events: list[dict[str, object]] = [
        {"type": "file.uploaded", "payload": file_uploaded(file_id=f"f-{i}")} for i in range(5)
    ]
    events[1]["id"] = "chosen-id"
    events.append({"type": "user.deleted", "payload": USER, "key": "k-1", "delay": "1m"})
    async with serving(env.topology) as client:
        response = await client.post("/v1/events", json={"events": events})
        assert response.status == 202, await response.text()
        ids = (await response.json())["ids"]
        assert len(ids) == 6
        assert ids[1] == "chosen-id"
        assert len(set(ids)) == 6
        assert await high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 5
        assert await high_watermarks(env.bootstrap, env.topics["user.deleted"], 1) == 1
    files = await asyncio.to_thread(consume, env.bootstrap, env.topics["file.uploaded"], 5)
    by_id = {headers_of(m)[h.EVENT_ID].decode(): m for m in files}
    assert set(by_id) == set(ids[:5])
    for event_id, event in zip(ids[:5], events[:5], strict=True):
        value = by_id[event_id].value()
        assert isinstance(value, bytes)
        decoded = wire.decode(value, FILE_SCHEMAS)
        assert isinstance(decoded, dict)
        assert decoded["file_id"] == event["payload"]["file_id"]  # type: ignore[index]
    [user] = await asyncio.to_thread(consume, env.bootstrap, env.topics["user.deleted"], 1)
    assert headers_of(user)[h.EVENT_ID].decode() == ids[5]
    assert user.key() == b"k-1"
    assert h.DELIVER_AT in headers_of(user)
    value = user.value()
    assert isinstance(value, bytes)
    assert wire.decode(value, {USER_SCHEMA.fingerprint: USER_SCHEMA}) == {
        "user_id": "u-1",
        "deleted_at": datetime(2025, 1, 1, tzinfo=UTC),
        "reason": "ABUSE",
    }


async def test_invalid_single_event_is_400_with_every_field(env: Env) -> None:
    payload = file_uploaded(size="big", colour="red")
    del payload["owner_id"]
    async with serving(env.topology) as client:
        response = await client.post("/v1/events/file.uploaded", json=payload)
        assert response.status == 400
        body = await response.json()
        assert body["error"] == "invalid"
        assert sorted(map(str, fields_of(body))) == ["colour", "owner_id", "size"]
        size = next(d for d in body["details"] if d["field"] == "size")
        assert size["expected"] == "long"
        assert "big" in size["found"]
        assert await high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 0


async def test_invalid_batch_is_400_by_index_and_publishes_nothing(env: Env) -> None:
    events = [
        {"type": "user.deleted", "payload": USER},  # valid, yet must not be published
        {"type": "file.uploaded", "payload": file_uploaded(size="big")},
        {"type": "no.such", "payload": {}},
        {"type": "file.uploaded", "payload": file_uploaded(), "delay": "soon", "extra": 1},
        "not an object",
    ]
    async with serving(env.topology) as client:
        response = await client.post("/v1/events", json={"events": events})
        assert response.status == 400
        body = await response.json()
        assert "nothing was published" in body["message"]
        assert sorted(map(str, fields_of(body))) == [
            "events[1].payload.size",
            "events[2].type",
            "events[3].delay",
            "events[3].extra",
            "events[4]",
        ]
        for topic, partitions in (
            (env.topics["user.deleted"], 1),
            (env.topics["file.uploaded"], 3),
        ):
            assert await high_watermarks(env.bootstrap, topic, partitions) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "code", "needle"),
    [
        (b'{"file_id": "f",\n  "size": }', "application/json", "bad_json", "line 2, column 11"),
        (b"{}", "text/plain", "bad_content_type", "text/plain"),
        (b'{"a": NaN}', "application/json", "bad_json", "line 1"),
        (b"\xff\xfe", "application/json", "bad_json", "UTF-8"),
    ],
)
async def test_unreadable_bodies_are_400(
    env: Env, data: bytes, content_type: str, code: str, needle: str
) -> None:
    async with serving(env.topology) as client:
        response = await client.post(
            "/v1/events/file.uploaded", data=data, headers={"Content-Type": content_type}
        )
        assert response.status == 400
        body = await response.json()
        assert body["error"] == code
        assert needle in body["message"]


async def test_bad_options_are_400(env: Env) -> None:
    async with serving(env.topology) as client:
        response = await client.post(
            "/v1/events/file.uploaded?deliver_at=yesterday",
            json=file_uploaded(),
            headers={"X-MSM-Delay": "30"},
        )
        assert response.status == 400
        body = await response.json()
        assert fields_of(body) == ["header X-MSM-Delay", "query deliver_at"]


async def test_unknown_type_is_404_with_the_known_types(env: Env) -> None:
    async with serving(env.topology) as client:
        response = await client.post("/v1/events/no.such", json={})
        assert response.status == 404
        body = await response.json()
        assert body["error"] == "unknown_event_type"
        assert body["details"][0]["known"] == ["file.uploaded", "payment.captured", "user.deleted"]
        missing_route = await client.get("/nowhere")
        assert missing_route.status == 404
        assert (await missing_route.json())["error"] == "not_found"
        wrong_method = await client.get("/v1/events")
        assert wrong_method.status == 405
        assert "POST" in wrong_method.headers["Allow"]
        assert (await wrong_method.json())["error"] == "method_not_allowed"


async def test_too_large_is_413_as_json(env: Env) -> None:
    settings = HttpSettings(port=0, max_request_bytes=8192)
    big = file_uploaded(path="/" + "x" * 3000)  # over file.uploaded's max_bytes of 2048
    async with serving(env.topology, settings) as client:
        response = await client.post("/v1/events/file.uploaded", json=big)
        assert response.status == 413
        body = await response.json()
        assert body["error"] == "too_large"
        assert "max_bytes of 2048" in body["details"][0]["message"]
        batch = {"events": [{"type": "file.uploaded", "payload": big}]}
        response = await client.post("/v1/events", json=batch)
        assert response.status == 413
        assert fields_of(await response.json()) == ["events[0].payload"]
        huge = file_uploaded(path="/" + "x" * 10_000)  # over the request limit
        response = await client.post("/v1/events/file.uploaded", json=huge)
        assert response.status == 413
        assert "8192" in (await response.json())["message"]
        chunked = await client.post(  # no Content-Length: aiohttp's limit applies while reading
            "/v1/events/file.uploaded",
            data=_chunks(b'{"path": "' + b"x" * 10_000 + b'"}'),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status == 413
        assert (await chunked.json())["error"] == "too_large"
        assert await high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 0


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


async def test_tokens_401_403_and_never_revealed(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = parse_tokens_text(f"{SECRET}:*;{FILE_ONLY}:file.uploaded")
    bodies: list[str] = []

    async def post(path: str, json: object, token: str | None) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = await client.post(path, json=json, headers=headers)
        bodies.append(await response.text())
        return response

    user_batch = {
        "events": [
            {"type": "file.uploaded", "payload": file_uploaded()},
            {"type": "user.deleted", "payload": USER},
        ]
    }
    async with serving(env.topology, tokens=tokens) as client:
        missing = await post("/v1/events/user.deleted", USER, None)
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await missing.json())["error"] == "missing_token"
        wrong = await post("/v1/events/user.deleted", USER, SECRET + "x")
        assert wrong.status == 401
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        forbidden = await post("/v1/events/user.deleted", USER, FILE_ONLY)
        assert forbidden.status == 403
        assert (await forbidden.json())["error"] == "forbidden"
        forbidden_batch = await post("/v1/events", user_batch, FILE_ONLY)
        assert forbidden_batch.status == 403
        assert fields_of(await forbidden_batch.json()) == ["events[1].type"]
        batch_unauthenticated = await post("/v1/events", user_batch, None)
        assert batch_unauthenticated.status == 401
        assert (await post("/v1/events/file.uploaded", file_uploaded(), FILE_ONLY)).status == 202
        assert (await post("/v1/events", user_batch, SECRET)).status == 202
        bad = await post("/v1/events/user.deleted", {"user_id": 5}, SECRET)
        assert bad.status == 400
    assert await high_watermarks(env.bootstrap, env.topics["file.uploaded"], 3) == 2
    assert await high_watermarks(env.bootstrap, env.topics["user.deleted"], 1) == 1
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records) + caplog.text
    for token in (SECRET, FILE_ONLY):
        assert token not in logged
        assert not any(token in body for body in bodies)
    assert OPEN_WARNING not in logged


async def test_open_without_tokens_warns_once(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(env.topology) as client:
        response = await client.post("/v1/events/user.deleted", json=USER)
        assert response.status == 202
    assert [r.getMessage() for r in caplog.records].count(OPEN_WARNING) == 1


async def test_health_ready_and_extra_routes(env: Env, tmp_path: Path) -> None:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text="msm_up 1\n")

    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    routes = [web.get("/metrics", metrics), web.get("/boom", boom)]
    async with serving(env.topology, extra_routes=routes) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200, await ready.text()
        assert await ready.json() == {"status": "ready"}
        assert await (await client.get("/metrics")).text() == "msm_up 1\n"
        failed = await client.get("/boom")
        assert failed.status == 500
        assert (await failed.json())["error"] == "internal"
    (tmp_path / "bare").mkdir()
    bare = load(tmp_path / "bare", f"bare-{uuid.uuid4().hex[:8]}", env.bootstrap)
    async with serving(bare) as client:  # a namespace whose topics were never created
        ready = await client.get("/readyz")
        assert ready.status == 503
        body = await ready.json()
        assert body["error"] == "not_ready"
        assert len(body["details"]) == 3
        assert "Retry-After" in ready.headers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_kafka_unreachable_is_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MSM_BOOTSTRAP_SERVERS", raising=False)  # the dead address must win
    dead = load(tmp_path, f"dead-{uuid.uuid4().hex[:8]}", f"127.0.0.1:{_free_port()}")
    settings = HttpSettings(port=0, kafka_timeout_s=2.0, retry_after_s=7, ready_timeout_s=1.0)
    async with serving(dead, settings) as client:
        started = time.monotonic()
        response = await client.post("/v1/events/user.deleted", json=USER)
        assert response.status == 503
        assert time.monotonic() - started < 10
        assert response.headers["Retry-After"] == "7"
        body = await response.json()
        assert body["error"] == "kafka_unavailable"
        assert len(body["details"]) == 1
        batch = {
            "events": [{"type": "user.deleted", "payload": USER, "id": f"b{i}"} for i in range(3)]
        }
        response = await client.post("/v1/events", json=batch)
        assert response.status == 503
        assert [d["id"] for d in (await response.json())["details"]] == ["b0", "b1", "b2"]
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503


async def test_deep_json_is_400_and_a_slow_body_is_408_while_others_are_served(
    env: Env,
) -> None:
    settings = HttpSettings(port=0, body_timeout_s=1.0)
    server = await start_server(env.topology, settings, tokens=TokenStore())
    url = URL(server.url)
    try:
        async with aiohttp.ClientSession(server.url) as client:
            deep = b"[" * 100_000 + b"]" * 100_000
            response = await client.post(
                "/v1/events/user.deleted", data=deep, headers={"Content-Type": "application/json"}
            )
            assert response.status == 400
            assert (await response.json())["error"] == "bad_json"
            slow = [await _slow_post(str(url.host), int(url.port or 80)) for _ in range(20)]
            started = time.monotonic()
            ok = await client.post("/v1/events/user.deleted", json=USER)
            assert ok.status == 202, "other clients are served while bodies trickle"
            assert time.monotonic() - started < 1.0
            answers = await asyncio.gather(*(_answer(reader) for reader, _ in slow))
            assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:1]
            for _, writer in slow:
                writer.close()
    finally:
        await server.stop()


async def _slow_post(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Headers promising 1000 bytes, then one byte: the rest never comes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /v1/events/user.deleted HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(10):
        return await reader.readline()
