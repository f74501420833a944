"""What the numbers were measured on, for the report: a ratio means little without its machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from pipeline.broker.settings import KAFKA_VERSION

REPO = Path(__file__).resolve().parent.parent


def describe() -> dict[str, str]:
    """Ordered label -> value pairs (CPU, memory, OS, Python, Kafka, commit, load)."""
    model, cores = _cpu()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "CPU": f"{model} ({cores} logical cores)",
        "Memory": _memory(),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Kafka": f"{KAFKA_VERSION} (single local broker, replication 1)",
        "Commit": commit(),
        "Load average at start": load,
    }


def _cpu() -> tuple[str, int]:
    model, cores = platform.processor() or "unknown", 0
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, os.cpu_count() or 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        if key.strip() == "processor":
            cores += 1
    return model, cores or os.cpu_count() or 0


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def commit(short: bool = True) -> str:
    """The checked-out commit, "+dirty" with uncommitted changes; "unknown" outside git."""
    args = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    try:
        head = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
