"""`msm produce` input handling: every bad input exits 1 naming the line or field, before Kafka.

The topology points at a port where nothing listens: these paths must fail before anything is
sent (the integration tests cover the successful paths against the real broker).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline import headers as h
from pipeline.cli import cli
from pipeline.cli.produce import renew
from pipeline.client.encoder import EventEncoder
from tests.publish_support import file_uploaded, load, write_topology


@pytest.fixture
def topology_file(tmp_path: Path) -> Path:
    return write_topology(tmp_path, "cli", bootstrap="localhost:1")


def run(topology_file: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--topology", str(topology_file), "produce", *args], input=stdin
    )


def test_json_syntax_error_names_the_line(topology_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(json.dumps(file_uploaded()) + "\n\n" + '{"file_id": "f2",}\n')
    result = run(topology_file, "file.uploaded", f"@{source}")
    assert result.exit_code == 1
    assert f"error: {source} line 3: invalid JSON" in result.stderr
    assert result.stdout == ""  # nothing was published


def test_schema_error_names_the_line_and_field(topology_file: Path) -> None:
    lines = json.dumps(file_uploaded()) + "\n" + json.dumps(file_uploaded(size="big")) + "\n"
    result = run(topology_file, "file.uploaded", "-", stdin=lines)
    assert result.exit_code == 1
    assert "error: stdin line 2: invalid file.uploaded payload: size: wrong type" in result.stderr


def test_argument_must_be_a_json_object(topology_file: Path) -> None:
    result = run(topology_file, "file.uploaded", "[1, 2]")
    assert result.exit_code == 1
    assert "error: argument: expected a JSON object, found list" in result.stderr


def test_unknown_event_lists_known_events(topology_file: Path) -> None:
    result = run(topology_file, "file.deleted", "{}")
    assert result.exit_code == 1
    assert "unknown event type 'file.deleted'" in result.stderr
    assert "file.uploaded, payment.captured, user.deleted" in result.stderr


def test_missing_file(topology_file: Path, tmp_path: Path) -> None:
    result = run(topology_file, "file.uploaded", f"@{tmp_path / 'nope.jsonl'}")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--delay", "30"], "Invalid value for '--delay'"),
        (["--at", "tomorrow"], "Invalid value for '--at'"),
        (["--delay", "30s", "--at", "2030-01-01T00:00:00Z"], "--delay or --at, not both"),
        (["--count", "0"], "Invalid value for '--count'"),
    ],
)
def test_bad_options_are_usage_errors(topology_file: Path, args: list[str], message: str) -> None:
    result = run(topology_file, "file.uploaded", "{}", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_renew_gives_a_fresh_id_and_keeps_a_field_key(tmp_path: Path) -> None:
    encoder = EventEncoder(load(tmp_path, "renew"))
    keyed = encoder.encode("file.uploaded", file_uploaded(file_id="f1"))
    copy = renew(keyed)
    assert copy.event_id != keyed.event_id
    assert copy.key == b"f1"
    assert copy.value == keyed.value
    assert dict(copy.headers)[h.EVENT_ID] == copy.event_id.encode()
    unkeyed = encoder.encode("user.deleted", {"user_id": "u", "deleted_at": 0, "reason": "ABUSE"})
    assert renew(unkeyed).key != unkeyed.key  # the key was the event id: it follows the id
