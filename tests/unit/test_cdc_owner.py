"""The CDC owner: Kafka trouble while reading ``<ns>.cdc`` is retried, and losing the partition
meanwhile stops the attempt; nothing dies silently."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.agents import scheduler_cdc
from pipeline.agents.base import LayerContext
from pipeline.errors import KafkaUnavailableError
from pipeline.topology import load_topology
from tests.fixtures.topologies import with_cdc, write_topology

TOPIC = "msm-test.cdc"


def owner(tmp_path: Path) -> scheduler_cdc.CdcOwner:
    ctx = LayerContext(load_topology(write_topology(tmp_path, with_cdc())))
    return scheduler_cdc.CdcOwner([], TOPIC, ctx)


async def test_a_failed_read_is_retried_until_the_sources_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def read(_kafka: Any, topic: str) -> list[tuple[bytes, bytes]]:
        calls.append(topic)
        if len(calls) < 3:
            raise KafkaUnavailableError("no leader")
        return []

    monkeypatch.setattr(scheduler_cdc, "read_partition", read)
    monkeypatch.setattr(scheduler_cdc, "RETRY_MIN_S", 0.01)
    o = owner(tmp_path)
    o.assigned([SimpleNamespace(topic=TOPIC, partition=0)])
    for _ in range(200):
        if o._starter is None:
            break
        await asyncio.sleep(0.01)
    assert calls == [TOPIC] * 3
    assert o._starter is None  # started (with no sources here), not stuck or dead


async def test_losing_the_partition_stops_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read(_kafka: Any, _topic: str) -> list[tuple[bytes, bytes]]:
        raise KafkaUnavailableError("no leader")

    monkeypatch.setattr(scheduler_cdc, "read_partition", read)
    monkeypatch.setattr(scheduler_cdc, "RETRY_MIN_S", 0.01)
    o = owner(tmp_path)
    o.assigned([SimpleNamespace(topic=TOPIC, partition=0)])
    await asyncio.sleep(0.05)
    await o.revoked()
    assert o._starter is None
    assert o._tasks == []
    o.assigned([SimpleNamespace(topic="other", partition=0)])  # not ours: nothing starts
    assert o._starter is None
