"""loadtest.report and loadtest.targets on synthetic Results: no broker, no scenario run."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import plots, report, targets
from loadtest.ledger_tail import LedgerTail
from loadtest.model import Latency, Result
from loadtest.runner import Outcome, RunSummary
from loadtest.stats import SERIES_LAG, SERIES_LATENESS, SERIES_P50, SERIES_P99, SERIES_STEPS

MACHINE = {"CPU": "Test CPU (2 logical cores)", "Commit": "abc1234"}


def lat(p99: float) -> Latency:
    return Latency(p50=p99 / 4, p95=p99 / 2, p99=p99, max=p99 * 2, count=1000)


def results() -> list[Result]:
    return [
        Result("ceilings", "confluent-kafka", "one hop", throughput=50_000.0),
        Result(
            "msm",
            "msm",
            "sustained",
            throughput=6000.0,
            series={SERIES_STEPS: [(4000.0, 4000.0), (6000.0, 5900.0), (9000.0, 6100.0)]},
        ),
        Result(
            "msm",
            "msm",
            "50% of sustained",
            throughput=3000.0,
            target_rate=3000.0,
            started=lat(30.0),
            finished=lat(40.0),
            extra={"load_fraction": 0.5},
            series={
                SERIES_P50: [(0.0, 10.0), (1.0, 11.0)],
                SERIES_P99: [(0.0, 30.0), (1.0, 40.0)],
                f"{SERIES_LAG}frontend": [(0.0, 5.0), (1.0, 7.0)],
            },
        ),
        Result("peers", "celery", "sustained", throughput=2000.0),
        Result("peers", "celery", "at 50%", throughput=1000.0, target_rate=1000.0),
        # a system whose only row carries both its sustained rate and the rate it was timed at
        Result("peers", "dramatiq", "no-op", throughput=7000.0, target_rate=3500.0),
        Result(
            "delays",
            "msm",
            "1 s",
            extra={"lateness_p99_ms": 20.0, "early": 0.0},
            series={SERIES_LATENESS: [(0.0, 3.0), (1.0, 12.0), (2.0, 40.0)]},
        ),
        Result("delays", "msm", "10 s", extra={"lateness_p99_ms": 120.0, "early": 0.0}),
        Result("scale", "msm", "0 pending", extra={"pending": 0.0, "rss_mb": 80.0}),
        Result("scale", "msm", "1M pending", extra={"pending": 1e6, "rss_mb": 84.0}),
    ]


def by_name(found: list[targets.Target]) -> dict[str, targets.Target]:
    return {t.name: t for t in found}


def test_targets_are_same_run_ratios() -> None:
    found = by_name(targets.compute(results()))
    celery = found["MSM / Celery sustained throughput"]
    assert celery.ratio == 3.0
    assert celery.met
    dramatiq = found["MSM / Dramatiq sustained throughput"]
    assert dramatiq.met is False
    assert "6000/s vs 7000/s" in dramatiq.measured
    assert found["MSM / raw confluent-kafka one hop"].ratio == 0.12
    assert found["MSM p99 end to end at half the sustained rate (ms)"].met  # 40 ms
    late = found["Delay lateness p99, worst delay (ms)"]
    assert late.measured == "120.0"
    assert late.met is False
    assert found["Early deliveries"].met
    rss = found["Worker RSS, most vs no pending delayed events"]
    assert rss.met
    assert rss.measured.startswith("+5.0%")


def test_missing_rows_are_not_measured_not_failed() -> None:
    found = targets.compute([Result("msm", "msm", "sustained", throughput=10.0)])
    assert all(t.met is None for t in found)
    assert all(t.measured == "not measured" for t in found)


def summary() -> RunSummary:
    rows = results()
    return RunSummary(
        smoke=True,
        outcomes=[
            Outcome("ceilings", "ok", rows[:1], 3.0),
            Outcome("faust", "skipped", error="no module yet"),
            Outcome("msm", "ok", rows[1:3], 40.0),
            Outcome("peers", "failed", rows[3:6], 5.0, "Traceback ...\nRuntimeError: redis"),
            Outcome("delays", "ok", rows[6:8], 10.0),
            Outcome("scale", "ok", rows[8:], 10.0),
        ],
        started=0.0,
        seconds=68.0,
    )


def test_report_renders_machine_targets_scenarios_and_plots(tmp_path: Path) -> None:
    path = report.write(summary(), tmp_path, describe=MACHINE)
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "report.md"
    assert "- CPU: Test CPU (2 logical cores)" in text
    assert "| MSM / Celery sustained throughput | 3.00 (6000/s vs 2000/s) | >= 2 | yes |" in text
    assert "| Delay lateness p99, worst delay (ms) | 120.0 | < 100 | **no** |" in text
    assert "## faust: skipped" in text
    assert "no module yet" in text
    assert "## peers: failed" in text
    assert "RuntimeError: redis" in text
    assert "| msm | 50% of sustained | 3,000 | 3,000 | 7.5 / 15.0 / 30.0 / 60.0 |" in text
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["lag.png", "latency.png", "lateness.png", "ratios.png", "throughput.png"]
    for name in written:
        assert f"]({name})" in text
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_report_without_series_links_no_plots(tmp_path: Path) -> None:
    only = RunSummary(False, [Outcome("msm", "ok", [Result("msm", "msm", "x")], 1.0)], 0.0, 1.0)
    text = report.write(only, tmp_path, describe=MACHINE).read_text(encoding="utf-8")
    assert "## Plots" not in text
    assert not list(tmp_path.glob("*.png"))
    assert "full" in text
    assert "## msm: ok" in text


def test_ledger_tail_reads_only_complete_new_lines(tmp_path: Path) -> None:
    tail = LedgerTail(tmp_path)
    ledger = tmp_path / "1.ledger"
    ledger.write_text("e1-0 1 2 3 1 bench-0\ne1-1 1 2 3 1 bench-0\ne2-0 1 2", encoding="ascii")
    tail.poll()
    assert tail.count("e1") == 2
    assert tail.count("e2") == 0
    with ledger.open("a", encoding="ascii") as f:
        f.write(" 3 1\ne1-0 1 2 9 1\n")  # the cut line completes; e1-0 again is a duplicate
    tail.poll()
    assert tail.count("e2") == 1
    assert tail.count("e1") == 2
    assert tail.duplicates == 1
    assert tail.runs("e1")[0].subscriber == "bench-0"


def test_odd_numbers_and_a_broken_plot_still_give_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> bool:
        raise RuntimeError("no display")

    monkeypatch.setitem(plots.PLOTS, "latency.png", broken)
    row = Result("msm", "msm", "x", throughput=float("nan"), extra={"inf": float("inf")})
    only = RunSummary(False, [Outcome("msm", "ok", [row], 1.0)], 0.0, 1.0)
    text = report.write(only, tmp_path, describe=MACHINE).read_text(encoding="utf-8")
    assert "| msm | x | nan |" in text
    assert "inf inf" in text
    assert "Plots not drawn: latency.png: RuntimeError: no display" in text
