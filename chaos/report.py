"""``report.md``: per scenario the checker's table, the faults and when, the machine, the command.

Rendering takes plain data (:class:`chaos.model.Outcome`) so it is tested without a broker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from chaos.checker import Kill, SubscriberCheck
from chaos.model import Outcome, ScenarioResult

REPORT = "report.md"
# Hand-kept: what each scenario found in MSM and what was fixed. Copied into every report, so
# the numbers and the history of what it took to reach them are read together.
FINDINGS = Path(__file__).resolve().parent / "FINDINGS.md"
DEFINITIONS = [
    "published: events Kafka acknowledged to the generator (only those are owed)",
    "executed: distinct published events the subscriber's handler ran at least once",
    "lost: published, never executed (must be 0)",
    "duplicated: executions beyond the first per event (a kill may cause some: at least once)",
    "reordered: ordered subscriber only; per key, first executions whose seq went back "
    "(events due now; must be 0)",
    "early: executions of a delayed event that started before its deliver_at (must be 0)",
]


def write(
    outcomes: Sequence[Outcome],
    out_dir: Path,
    *,
    smoke: bool,
    started: float,
    seconds: float,
    command: str,
    machine: dict[str, str],
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT
    text = render(
        outcomes, smoke=smoke, started=started, seconds=seconds, command=command, machine=machine
    )
    path.write_text(text, encoding="utf-8")
    return path


def render(
    outcomes: Sequence[Outcome],
    *,
    smoke: bool,
    started: float,
    seconds: float,
    command: str,
    machine: dict[str, str],
) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
    kind = (
        "smoke (seconds per fault: checks the harness and the basic promise)" if smoke else "full"
    )
    verdict = "PASS" if outcomes and all(o.passed for o in outcomes) else "FAIL"
    lines = [
        "# MSM chaos report",
        "",
        f"Run {when}, {kind}, {seconds:.0f} s. **{verdict}**: "
        + ", ".join(f"{o.name} {_verdict(o)}" for o in outcomes),
        "",
        f"Reproduce: `{command}` (`make chaos` for the full run, `make chaos-smoke` for CI's).",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine.items()),
        "",
        "## What the columns mean",
        "",
        *(f"- {d}" for d in DEFINITIONS),
        "",
    ]
    for outcome in outcomes:
        lines += [f"## {outcome.name}: {_verdict(outcome)}", ""]
        if outcome.result is None:
            lines += [f"Failed after {outcome.seconds:.0f} s:", "", "```", outcome.error, "```", ""]
            continue
        lines += _scenario(outcome.result, outcome.seconds)
    if FINDINGS.exists():
        lines += ["", FINDINGS.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


def _verdict(outcome: Outcome) -> str:
    if outcome.result is None:
        return "crashed"
    return "PASS" if outcome.passed else "FAIL"


def _scenario(result: ScenarioResult, seconds: float) -> list[str]:
    problems = result.problems()
    drain = "timed out" if result.drain_s is None else f"{result.drain_s:.1f} s"
    lines = [
        *(f"- {k}: {v}" for k, v in result.settings.items()),
        f"- ran {seconds:.0f} s; drain (end of publishing to every event executed): {drain}",
        "",
        "| subscriber | ordered | published | executed | lost | duplicated | reordered | early |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *(_row(c) for c in result.checks),
        "",
    ]
    lines += [
        "Problems: " + "; ".join(problems) + "." if problems else "No promise broken.",
        "",
    ]
    if result.kills:
        lines += _kills(result.kills, result.checks, result.started_ns)
    lines += _duplicates(result.checks)
    for check in result.checks:
        for kind, ids in check.samples.items():
            lines.append(f"- {check.subscriber}, {kind} (first {len(ids)}): " + "; ".join(ids))
    for gone in result.exits:
        lines += [
            "",
            f"{gone.target} worker pid {gone.pid} exited {gone.code} on its own; its log ended:",
            "",
            "```",
            gone.tail.strip(),
            "```",
        ]
    lines += [f"- {note}" for note in result.notes]
    return [*lines, ""]


def _row(c: SubscriberCheck) -> str:
    ordered, reordered = ("yes", str(c.reordered)) if c.ordered else ("no", "n/a")
    cells = [
        c.subscriber,
        ordered,
        c.published,
        c.executed,
        c.lost,
        c.duplicated,
        reordered,
        c.early,
    ]
    return "| " + " | ".join(str(x) for x in cells) + " |"


def _kills(kills: Sequence[Kill], checks: Sequence[SubscriberCheck], t0_ns: int) -> list[str]:
    subs = [c.subscriber for c in checks]
    lines = [
        "Faults, and the duplicates each explains (a kill between an event's first execution "
        "and its repeat):",
        "",
        "| # | killed | at | pid | back after | new pid | "
        + " | ".join(f"dups {s}" for s in subs)
        + " |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(subs),
    ]
    for i, kill in enumerate(kills, 1):
        back = f"{(kill.restarted_ns - kill.killed_ns) / 1e9:.1f} s" if kill.restarted_ns else "-"
        dups = [str(c.duplicates_by_kill.get(kill.label, 0)) for c in checks]
        at = f"{(kill.killed_ns - t0_ns) / 1e9:.1f} s"
        cells = [str(i), kill.target, at, str(kill.pid), back, str(kill.new_pid or "-"), *dups]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _duplicates(checks: Sequence[SubscriberCheck]) -> list[str]:
    lines = []
    for c in checks:
        if not c.duplicated:
            continue
        lines.append(
            f"- {c.subscriber}: {c.duplicated} duplicated executions, "
            f"{c.unexplained_duplicates} with no kill between first run and repeat; "
            f"longest first-run-to-kill lead {c.max_lead_ms:.0f} ms"
        )
    return [*lines, ""] if lines else []
