"""Runs the chosen scenarios in order, with progress bars, and writes one report.

A scenario that raises is recorded as failed (with its traceback) and the rest still run: one
broken peer should not cost the numbers of the others. Scenarios whose module does not exist
yet are skipped with a note. The report is written even when scenarios failed; the work dir
(worker logs, ledgers) is kept only then.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from loadtest import report, scenarios
from loadtest.model import BenchContext, Result


@dataclass
class Outcome:
    """What happened to one scenario."""

    name: str
    status: str  # "ok", "failed", "skipped"
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


@dataclass
class RunSummary:
    smoke: bool
    outcomes: list[Outcome]
    started: float  # wall clock
    seconds: float

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    @property
    def results(self) -> list[Result]:
        return [r for o in self.outcomes for r in o.results]


def run_scenarios(
    names: list[str],
    *,
    smoke: bool,
    out_dir: Path,
    bootstrap: str,
    console: Console | None = None,
) -> RunSummary:
    out_dir = out_dir.resolve()  # children (workers, redis) run in other directories
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir / "work"
    work_dir.mkdir(exist_ok=True)
    console = console or Console()
    began, wall = time.monotonic(), time.time()
    outcomes: list[Outcome] = []
    columns = (
        TextColumn("{task.fields[name]:<9}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as progress:
        tasks = {n: progress.add_task("waiting", total=1.0, name=n, start=False) for n in names}
        for name in names:
            task = tasks[name]
            progress.start_task(task)  # elapsed time counts from here

            def tell(what: str, fraction: float, task: TaskID = task) -> None:
                if fraction >= 0:
                    progress.update(task, description=what, completed=min(fraction, 1.0))
                else:
                    progress.update(task, description=what)

            if not scenarios.exists(name):
                outcomes.append(Outcome(name, "skipped", error="no module yet"))
                progress.update(task, description="skipped: not written yet", completed=1.0)
                progress.stop_task(task)
                continue
            ctx = BenchContext(smoke, out_dir, bootstrap, work_dir / name, tell)
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            outcomes.append(_run_one(name, ctx))
            status = outcomes[-1].status
            progress.update(task, description=status, completed=1.0)
            progress.stop_task(task)
            if status == "failed":
                console.print(f"[red]{name} failed[/red]:\n{outcomes[-1].error}")
    summary = RunSummary(smoke, outcomes, wall, time.monotonic() - began)
    if not summary.failed:  # worker logs and ledgers: only worth keeping to debug a failure
        shutil.rmtree(work_dir, ignore_errors=True)
    return summary


def run_and_report(
    names: list[str], *, smoke: bool, out_dir: Path, bootstrap: str, console: Console | None = None
) -> int:
    """Runs, writes the report, says where it is; the exit code (1: a scenario failed)."""
    console = console or Console()
    summary = run_scenarios(
        names, smoke=smoke, out_dir=out_dir, bootstrap=bootstrap, console=console
    )
    _dump(summary, out_dir / "results.json")
    path = report.write(summary, out_dir)
    console.print(f"report: {path}")
    for outcome in summary.outcomes:
        console.print(f"  {outcome.name}: {outcome.status} ({outcome.seconds:.0f} s)")
    return 1 if summary.failed else 0


def _dump(summary: RunSummary, path: Path) -> None:
    """Every Result as JSON before rendering: the numbers survive a report bug."""
    data = {"smoke": summary.smoke, "outcomes": [asdict(o) for o in summary.outcomes]}
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")


def _run_one(name: str, ctx: BenchContext) -> Outcome:
    began = time.monotonic()
    try:
        results = scenarios.load(name)(ctx)
    except Exception:  # reported in the report and the exit code
        return Outcome(name, "failed", seconds=time.monotonic() - began, error=_trace())
    return Outcome(name, "ok", list(results), time.monotonic() - began)


def _trace() -> str:
    return traceback.format_exc(limit=12)[-6000:]
