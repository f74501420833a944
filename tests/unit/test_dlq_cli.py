"""`msm dlq`: time parsing, subscriber lookup, renderings; no broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain, ErrorEntry
from pipeline.avro import wire
from pipeline.avro.schemas import load_schema
from pipeline.cli import cli
from pipeline.ops.dlq import DeadLetter, UnknownSubscriberError, dlq_topic, parse_since
from pipeline.ops.dlq_view import decode_payload, letter_detail, letter_summary
from pipeline.topology import Topology, load_topology
from tests.fixtures.topologies import minimal, write_topology

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("1d12h", NOW - timedelta(days=1, hours=12)),
        ("2030-01-01T00:00:00Z", datetime(2030, 1, 1, tzinfo=UTC)),
        ("2030-01-01T00:00:00", datetime(2030, 1, 1, tzinfo=UTC)),  # naive means UTC
        ("2030-01-01", datetime(2030, 1, 1, tzinfo=UTC)),
        (
            "2030-01-01T02:00:00+02:00",
            datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_since_accepts_iso_times_and_durations_ago(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "30", "1x", ""])
def test_since_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_since(text, NOW)


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    return load_topology(write_topology(tmp_path, minimal()))


def test_unknown_subscriber_suggests_the_closest(topology: Topology) -> None:
    assert dlq_topic(topology, "indexer") == "msm-test.dlq.indexer"
    with pytest.raises(UnknownSubscriberError, match="did you mean 'indexer'"):
        dlq_topic(topology, "indexr")


def test_cli_unknown_subscriber_exits_1_before_any_kafka(topology: Topology) -> None:
    args = ["--topology", str(topology.source_path), "dlq", "list", "thumbnailr"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "unknown subscriber 'thumbnailr'; did you mean 'thumbnailer'?" in result.output


def test_cli_bad_since_is_a_usage_error(topology: Topology) -> None:
    args = ["--topology", str(topology.source_path), "dlq", "redrive", "indexer"]
    result = CliRunner().invoke(cli, [*args, "--since", "last week"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def _letter(payload: bytes, event_type: str = "thing.created") -> DeadLetter:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    chain = ErrorChain().add(ErrorEntry(attempt=1, at=at, error_type="http", status=503))
    chain = chain.add(ErrorEntry(attempt=2, at=at, error_type="builtins.ValueError", message="x"))
    headers = ((h.EVENT_ID, b"e-1"), (h.ERRORS, chain.to_json()), ("bin", b"\xff\x00"))
    return DeadLetter(
        "ns.dlq.s",
        1,
        7,
        1_000,
        "e-1",
        event_type,
        b"k-1",
        2,
        "exhausted",
        2_000,
        chain,
        None,
        headers,
        payload,
    )


def test_summary_has_first_and_last_error(topology: Topology) -> None:
    summary = letter_summary(_letter(b""))
    assert summary["ref"] == "1:7"
    assert summary["key"] == "k-1"
    assert summary["dead_at"] == "1970-01-01T00:00:02+00:00"
    assert isinstance(summary["first_error"], dict)
    assert summary["first_error"]["status"] == 503
    assert isinstance(summary["last_error"], dict)
    assert summary["last_error"]["type"] == "builtins.ValueError"


def test_detail_decodes_avro_payloads(topology: Topology) -> None:
    schema = load_schema(topology.events["thing.created"].schema_path)
    payload = wire.encode(schema, {"id": "t-1", "size": 3, "colour": "red"})
    letter = _letter(payload)
    detail = letter_detail(letter, decode_payload(letter, topology))
    assert detail["payload"] == {
        "bytes": len(payload),
        "format": "avro",
        "value": {"id": "t-1", "size": 3, "colour": "red"},
    }
    headers = detail["headers"]
    assert isinstance(headers, list)
    assert {"name": "bin", "value": None, "base64": "/wA="} in headers
    json.dumps(detail)


def test_detail_falls_back_to_base64_for_undecodable_payloads(topology: Topology) -> None:
    letter = _letter(b"not avro")
    decoded = decode_payload(letter, topology)
    assert decoded.problem is not None
    payload = letter_detail(letter, decoded)["payload"]
    assert isinstance(payload, dict)
    assert payload["format"] == "bytes"
    assert payload["base64"] == "bm90IGF2cm8="
    unknown = decode_payload(_letter(b"", "nope.event"), topology)
    assert unknown.problem == "event type 'nope.event' is not in the topology"
