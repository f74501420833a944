"""Fixtures shared by every test: a real Kafka broker for integration tests, never a mock.

Tests under tests/integration get the ``integration`` marker and the ``kafka_bootstrap``
fixture automatically; unit tests never start a broker.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import (
    NewTopic,
)  # typed here; confluent_kafka.admin does not re-export it

from pipeline.broker import BrokerSettings, is_answering, start, stop

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_TOPIC_TIMEOUT_S = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _integration_needs_broker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("integration") is not None:
        request.getfixturevalue("kafka_bootstrap")
    else:  # unit tests check defaults: a developer's broker override must not leak in
        monkeypatch.delenv("MSM_BOOTSTRAP_SERVERS", raising=False)


def _local_port(bootstrap: str) -> int | None:
    host, _, port = bootstrap.strip().rpartition(":")
    return int(port) if host in ("localhost", "127.0.0.1") and port.isdigit() else None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``$MSM_BOOTSTRAP_SERVERS`` or localhost:9092; starts a local broker when none answers.

    Started through the same code as ``msm broker start [--port P]`` and stopped at the end
    only if this fixture started it. A broker that cannot start fails the tests: never a skip.
    """
    bootstrap = os.environ.get("MSM_BOOTSTRAP_SERVERS", "localhost:9092")
    if is_answering(bootstrap, 5.0):
        yield bootstrap
        return
    port = _local_port(bootstrap)
    if port is None:
        pytest.fail(f"no Kafka broker answers on MSM_BOOTSTRAP_SERVERS={bootstrap}")
    settings = BrokerSettings(port=port)
    result = start(settings)
    try:
        yield bootstrap
    finally:
        if result.outcome == "started":
            stop(settings)


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap, "log_level": 0})


@pytest.fixture(scope="session")
def unique_name() -> Callable[[str], str]:
    """``unique_name(prefix)``: a fresh name that is valid as a topic or group name."""

    def make(prefix: str = "t") -> str:
        safe = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:200] or "t"
        return f"{safe}-{uuid.uuid4().hex[:12]}"

    return make


def _wait_for_topic(admin: AdminClient, name: str, partitions: int) -> None:
    """Creation is acknowledged by the controller; wait until metadata shows every leader."""
    deadline = time.monotonic() + _TOPIC_TIMEOUT_S
    while True:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {name} has no leaders after {_TOPIC_TIMEOUT_S} s")
        time.sleep(0.1)


@pytest.fixture
def topic_factory(
    admin: AdminClient, unique_name: Callable[[str], str]
) -> Iterator[Callable[..., str]]:
    """``topic_factory(partitions=1, config=None, prefix="t")`` creates a topic for this test."""
    created: list[str] = []

    def create(partitions: int = 1, config: dict[str, str] | None = None, prefix: str = "t") -> str:
        name = unique_name(prefix)
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new], operation_timeout=_TOPIC_TIMEOUT_S)[name].result(
            timeout=_TOPIC_TIMEOUT_S
        )
        created.append(name)
        _wait_for_topic(admin, name, partitions)
        return name

    yield create
    if not created:
        return
    for future in admin.delete_topics(created, operation_timeout=_TOPIC_TIMEOUT_S).values():
        try:
            future.result(timeout=_TOPIC_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
