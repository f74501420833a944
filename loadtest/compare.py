"""Before and after: two runs' ``results.json`` side by side, as a markdown section.

``python -m loadtest.compare BEFORE_DIR AFTER_DIR [--append]`` prints (or appends to AFTER's
``report.md``) the issue's targets and every MSM row of both runs, and the commits between
them. Both runs should come from the same machine; each ratio is still same-run, so a target's
before and after compare like with like even when the peers' numbers moved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest import targets
from loadtest.model import Latency, Result
from loadtest.report import REPORT

RESULTS = "results.json"


def load(run_dir: Path) -> list[Result]:
    """The Results a run dumped (scenarios that failed have none)."""
    data = json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))
    return [_result(row) for outcome in data["outcomes"] for row in outcome["results"]]


def _result(row: dict[str, Any]) -> Result:
    fields = {k: v for k, v in row.items() if k not in ("started", "finished", "series")}
    return Result(
        **fields,
        started=_latency(row.get("started")),
        finished=_latency(row.get("finished")),
    )


def _latency(value: dict[str, float] | None) -> Latency | None:
    return None if value is None else Latency(**value)  # type: ignore[arg-type]


def section(before: list[Result], after: list[Result], before_name: str, commits: str) -> str:
    lines = [
        "## Before and after",
        "",
        f"Before: run `{before_name}` (same machine, same harness); each ratio is from its own "
        "run.",
        "",
        "| target | before | after | goal |",
        "|---|---|---|---|",
    ]
    old = {t.name: t for t in targets.compute(before)}
    for new in targets.compute(after):
        was = old.get(new.name)
        lines.append(
            f"| {new.name} | {was.measured if was else 'not measured'} | {new.measured} "
            f"| {new.goal} |"
        )
    lines += [
        "",
        "| MSM row | before: /s, p50 / p99 ms | after: /s, p50 / p99 ms |",
        "|---|---|---|",
    ]
    earlier = {(r.scenario, r.label): r for r in before if r.system == "msm"}
    for r in after:
        if r.system == "msm":
            lines.append(
                f"| {r.scenario}: {r.label} | {_cell(earlier.get((r.scenario, r.label)))} "
                f"| {_cell(r)} |"
            )
    if commits:
        lines += ["", "What changed in between (`git log --oneline`):", "", "```", commits, "```"]
    return "\n".join(lines) + "\n"


def _cell(r: Result | None) -> str:
    if r is None:
        return "not measured"
    rate = f"{r.throughput:,.0f}" if r.throughput is not None else "-"
    lat = r.finished or r.started
    return f"{rate}, {lat.p50:,.0f} / {lat.p99:,.0f}" if lat is not None else rate


def _commit(run_dir: Path) -> str:
    """A run directory is named ``<date>-<time>-<commit>``."""
    return run_dir.resolve().name.rsplit("-", 1)[-1]


def commits_between(before: Path, after: Path) -> str:
    span = f"{_commit(before)}..{_commit(after)}"
    try:
        out = subprocess.run(
            ["git", "log", "--oneline", "--no-decorate", span],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def append(before: Path, after: Path) -> None:
    """Add the section to AFTER's report."""
    text = section(load(before), load(after), before.resolve().name, commits_between(before, after))
    with (after / REPORT).open("a", encoding="utf-8") as report:
        report.write("\n" + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.compare", description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--append", action="store_true", help=f"append to AFTER's {REPORT}")
    args = parser.parse_args(argv)
    if args.append:
        append(args.before, args.after)
        return 0
    text = section(
        load(args.before),
        load(args.after),
        args.before.resolve().name,
        commits_between(args.before, args.after),
    )
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
