"""``python -m chaos [--smoke] [--scenarios kill-layers] [--out DIR] [--bootstrap HOST:PORT]``

Exit code 0 when every scenario ran and broke no promise (0 lost, 0 reordered for ordered
subscribers, 0 early, no worker dying on its own), 1 otherwise, 2 for bad arguments. The
report (and ``results.json``) is written in every case but bad arguments. Worker logs and
ledgers are kept under ``<out>/work/`` only when something failed: they are the evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from chaos import report, scenarios
from chaos.model import ChaosContext, Outcome
from loadtest import machine

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds per fault (CI)")
    known = ",".join(scenarios.SCENARIOS)
    parser.add_argument("--scenarios", default=known, help=f"comma-separated (default {known})")
    parser.add_argument("--out", type=Path, help="out dir (default results/<date>-<commit>/)")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("MSM_BOOTSTRAP_SERVERS", "localhost:9092"),
        help="Kafka (env MSM_BOOTSTRAP_SERVERS; default localhost:9092)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown}; known: {known}")
    out = (args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{machine.commit()}").resolve()
    console = Console()
    started, began = time.time(), time.monotonic()
    outcomes = [_run(name, args, out, console) for name in names]
    command = (
        "python -m chaos" + (" --smoke" if args.smoke else "") + f" --scenarios {','.join(names)}"
    )
    (out / "results.json").write_text(
        json.dumps([asdict(o) for o in outcomes], indent=1, default=str), encoding="utf-8"
    )
    path = report.write(
        outcomes,
        out,
        smoke=args.smoke,
        started=started,
        seconds=time.monotonic() - began,
        command=command,
        machine=machine.describe(),
    )
    console.print(f"report: {path}")
    for o in outcomes:
        problems = o.result.problems() if o.result else [o.error.strip().splitlines()[-1]]
        console.print(f"  {o.name}: {'PASS' if o.passed else 'FAIL'} {'; '.join(problems)}")
    if all(o.passed for o in outcomes):
        shutil.rmtree(out / "work", ignore_errors=True)
        return 0
    return 1


def _run(name: str, args: argparse.Namespace, out: Path, console: Console) -> Outcome:
    work = out / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    def say(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - began:6.1f} s[/dim] {name}: {text}")

    ctx = ChaosContext(args.smoke, args.bootstrap, work, say)
    try:
        result = scenarios.SCENARIOS[name](ctx)
    except Exception:  # reported, and the other scenarios still run
        error = traceback.format_exc(limit=12)[-6000:]
        console.print(f"[red]{name} crashed[/red]:\n{error}")
        return Outcome(name, "failed", time.monotonic() - began, error=error)
    return Outcome(name, "ok", time.monotonic() - began, result)


if __name__ == "__main__":
    sys.exit(main())
