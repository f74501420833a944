"""`msm lag --watch` output: the in/out/ETA columns and the JSON lines, without a broker."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console, RenderableType

from pipeline.cli import cli
from pipeline.ops.lag import GroupLag, LagReport, Member, PartitionLag, TopicLag
from pipeline.ops.lag_view import rates_as_dict, render_report
from pipeline.ops.layers import classify_topic, known_topics
from pipeline.ops.rates import RateSampler

M = Member("m-1", "worker-1", "/10.0.0.1")
EXAMPLE = Path(__file__).parents[2] / "topology.yaml"


def _report(at: float, committed: int, end: int) -> LagReport:
    topic = "msm.sub.thumbnailer"
    rows = (PartitionLag(topic, 0, committed, end, M),)
    group = GroupLag("msm.delivery", "Stable", 1, (TopicLag(topic, rows),), member_list=(M,))
    return LagReport((group,), 1_700_000_000.0 + at, at)


def _classify(topic: str) -> Any:
    return classify_topic(topic, "msm", known_topics("msm", [], ["thumbnailer"]))


def _text(renderable: RenderableType) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_watch_table_has_rates_and_eta_per_layer_and_subscriber() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(_report(0, 0, 1000))
    report = _report(2, 400, 1100)  # in 50/s, out 200/s, lag 700: drains in 700/150 s
    text = _text(render_report(report, _classify, flows=sampler.update(report)))
    header = next(line for line in text.splitlines() if "in/s" in line)
    assert "out/s" in header
    assert "ETA" in header
    row = next(line for line in text.splitlines() if "msm.sub.thumbnailer" in line)
    assert "delivery" in row
    assert "thumbnailer" in row
    assert "50.0" in row
    assert "200" in row
    assert "5s" in row


def test_first_refresh_has_empty_rate_cells() -> None:
    report = _report(0, 0, 10)
    text = _text(render_report(report, _classify, flows=RateSampler().update(report)))
    assert "in/s" in text
    assert "growing" not in text


def test_rates_json_section() -> None:
    sampler = RateSampler(half_life_s=0)
    sampler.update(_report(0, 0, 1000))
    report = _report(2, 0, 1100)
    doc = rates_as_dict(report, sampler.update(report), _classify)
    assert json.loads(json.dumps(doc)) == doc
    assert doc == {
        "seconds": 2.0,
        "topics": [
            {
                "group": "msm.delivery",
                "topic": "msm.sub.thumbnailer",
                "layer": "delivery",
                "owner": "thumbnailer",
                "lag": 1100,
                "rate_in": 50.0,
                "rate_out": 0.0,
                "trend": "growing",
                "eta_s": None,
            }
        ],
        "groups": [
            {
                "group": "msm.delivery",
                "lag": 1100,
                "rate_in": 50.0,
                "rate_out": 0.0,
                "trend": "growing",
                "eta_s": None,
            }
        ],
    }


def test_watch_json_prints_one_line_per_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    reports: Iterator[LagReport] = iter([_report(0, 0, 100), _report(0.2, 10, 150)])
    monkeypatch.setattr("pipeline.cli.lag.collect_lag", lambda *_: next(reports))
    args = ["--topology", str(EXAMPLE), "lag", "--watch", "--json", "--count", "2"]
    result = CliRunner().invoke(cli, [*args, "--interval-s", "0.2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["rates"]["seconds"] is None
    assert lines[0]["rates"]["topics"][0]["rate_in"] is None
    assert lines[1]["total_lag"] == 140
    (topic,) = lines[1]["rates"]["topics"]
    assert topic["rate_in"] == pytest.approx(250.0)
    assert topic["rate_out"] == pytest.approx(50.0)
    assert topic["layer"] == "delivery"
