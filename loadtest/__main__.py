"""``python -m loadtest [--smoke] [--scenarios a,b] [--out DIR] [--bootstrap HOST:PORT]
[--baseline RUN_DIR]``: with a baseline, the report ends with both runs side by side.

Exit code 0 when every chosen scenario ran (skipped ones, not written yet, do not count), 1 when
one failed, 2 for bad arguments; the report is written in every case but bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from loadtest import compare, machine, scenarios
from loadtest.runner import run_and_report

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds per scenario (CI)")
    parser.add_argument(
        "--scenarios",
        default=",".join(scenarios.SCENARIOS),
        help=f"comma-separated, run in this order (default all: {','.join(scenarios.SCENARIOS)})",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="out dir (default results/<date>-<commit>/)"
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("MSM_BOOTSTRAP_SERVERS", "localhost:9092"),
        help="Kafka (env MSM_BOOTSTRAP_SERVERS; default localhost:9092)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="an earlier run's directory: add a before/after section to the report",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(scenarios.SCENARIOS)}")
    out = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{machine.commit()}"
    code = run_and_report(names, smoke=args.smoke, out_dir=out, bootstrap=args.bootstrap)
    if args.baseline is not None and (out / compare.RESULTS).exists():
        compare.append(args.baseline, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
