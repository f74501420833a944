"""Whatever arrives on an ingress topic, the frontend's output fits the topics it writes to.

A record the producer refuses would crash the worker on every restart (a poison pill), so
the normaliser bounds every record it returns by ``Normalizer.budget``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import headers as h
from pipeline.agents.frontend_normalize import Normalizer, Rejected
from pipeline.topology import load_topology
from pipeline.topology.topics import HEADROOM
from tests.fixtures.topologies import minimal, write_topology

TOPIC = "msm-test.in.other.happened"


@pytest.fixture
def normalizer(tmp_path: Path) -> Normalizer:
    doc = minimal()
    for event in doc["events"].values():
        event["max_bytes"] = 512
    return Normalizer(load_topology(write_topology(tmp_path, doc)), clock_ms=lambda: 1)


def _size(value: bytes, headers: list[tuple[str, bytes]]) -> int:
    return len(value) + sum(len(k) + len(v) for k, v in headers)


def test_the_budget_is_the_largest_topic_limit_less_framing(normalizer: Normalizer) -> None:
    assert 512 + HEADROOM - 2048 < normalizer.budget < 512 + HEADROOM


def test_a_reject_that_cannot_carry_all_its_bytes_keeps_a_prefix(normalizer: Normalizer) -> None:
    value = b"x" * (512 + HEADROOM - 100)  # fits the ingress topic, not with reject headers
    out = normalizer.normalize(TOPIC, b"k", value, [("x-user", b"1")], 0, 7)
    assert isinstance(out, Rejected)
    assert out.reason == "oversize"
    found = dict(out.headers)
    assert found[h.REJECT_TRUNCATED] == str(len(value)).encode()
    assert found["x-user"] == b"1"
    assert value.startswith(out.value)
    assert _size(out.value, out.headers) <= normalizer.budget


def test_original_headers_too_big_to_keep_are_counted(normalizer: Normalizer) -> None:
    huge = [(f"x-{i}", b"y" * 1000) for i in range(70)]
    out = normalizer.normalize(TOPIC, None, b"{not json", huge, 0, 0)
    assert isinstance(out, Rejected)
    found = dict(out.headers)
    assert found[h.REJECT_HEADERS_DROPPED] == b"70"
    assert found[h.REJECT_REASON] == b"invalid_json"
    assert out.value == b"{not json"
    assert _size(out.value, out.headers) <= normalizer.budget


def test_a_valid_event_whose_headers_leave_no_room_is_rejected(normalizer: Normalizer) -> None:
    headers = [("x-big", b"y" * (HEADROOM - 200))]
    out = normalizer.normalize(TOPIC, None, json.dumps({"key": "a"}).encode(), headers, 0, 0)
    assert isinstance(out, Rejected)
    assert (out.reason, out.field) == ("oversize", "headers")
    assert _size(out.value, out.headers) <= normalizer.budget
