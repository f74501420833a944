"""Before and after: two runs' dumped results, read back and set side by side."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from loadtest import compare, report
from loadtest.model import Result
from loadtest.runner import RunSummary, _dump
from tests.unit.test_loadtest_report import summary


def run_dir(root: Path, name: str, run: RunSummary) -> Path:
    out = root / name
    out.mkdir()
    _dump(run, out / compare.RESULTS)
    report.write(run, out, describe={"Commit": name})
    return out


def faster(rows: list[Result]) -> list[Result]:
    return [
        replace(r, throughput=r.throughput * 2)
        if r.system == "msm" and r.throughput is not None and r.target_rate is None
        else r
        for r in rows
    ]


def test_a_dumped_run_reads_back_as_the_same_results(tmp_path: Path) -> None:
    run = summary()
    loaded = compare.load(run_dir(tmp_path, "20260101-000000-aaaaaaa", run))
    assert [replace(r, series={}) for r in loaded] == [replace(r, series={}) for r in run.results]


def test_the_section_shows_targets_and_msm_rows_before_and_after(tmp_path: Path) -> None:
    before = summary()
    after = replace(
        before, outcomes=[replace(o, results=faster(o.results)) for o in before.outcomes]
    )
    old = run_dir(tmp_path, "20260101-000000-aaaaaaa", before)
    new = run_dir(tmp_path, "20260102-000000-bbbbbbb", after)
    compare.append(old, new)
    text = (new / report.REPORT).read_text(encoding="utf-8")
    assert "## Before and after" in text
    assert "`20260101-000000-aaaaaaa`" in text
    assert (
        "| MSM / Celery sustained throughput | 3.00 (6000/s vs 2000/s) | 6.00 (12000/s vs 2000/s)"
        in text
    )
    assert "| msm: sustained | 6,000 | 12,000 |" in text
    assert "| msm: 50% of sustained | 3,000, 10 / 40 | 3,000, 10 / 40 |" in text
