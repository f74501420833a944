"""The chaos report renders from plain data: verdicts, the checker's table, failures, findings."""

from __future__ import annotations

from chaos import report
from chaos.checker import Kill, SubscriberCheck
from chaos.model import Outcome, ScenarioResult

MACHINE = {"CPU": "test cpu"}


def _render(*outcomes: Outcome) -> str:
    return report.render(
        outcomes, smoke=True, started=0.0, seconds=12.0, command="python -m chaos", machine=MACHINE
    )


def _result(*, lost: int = 0, failures: list[str] | None = None) -> ScenarioResult:
    checks = [
        SubscriberCheck("plain", False, published=10, executed=10 - lost, executions=11, lost=lost),
        SubscriberCheck("ordered", True, published=10, executed=10, executions=10),
    ]
    kill = Kill("broker", 42, 1_000_000_000, 3_000_000_000, 43)
    return ScenarioResult(
        "broker-kill", 0, checks, [kill], {"rate": "80/s"}, failures=failures or []
    )


def test_a_passing_scenario_shows_its_table_faults_settings_and_no_problem() -> None:
    text = _render(Outcome("broker-kill", "ok", 30.0, _result()))
    assert "**PASS**: broker-kill PASS" in text
    assert "| plain | no | 10 | 10 | 0 |" in text
    assert "| ordered | yes | 10 | 10 | 0 |" in text
    assert "- rate: 80/s" in text
    assert "| 1 | broker |" in text
    assert "No promise broken." in text
    assert "- CPU: test cpu" in text


def test_lost_events_and_scenario_failures_fail_the_run_and_are_named() -> None:
    failed = _result(lost=2, failures=["HTTP ingress answered {500: 1}"])
    text = _render(Outcome("broker-kill", "ok", 30.0, failed))
    assert "**FAIL**" in text
    assert "plain: 2 lost" in text
    assert "HTTP ingress answered {500: 1}" in text


def test_a_crashed_scenario_shows_its_traceback() -> None:
    text = _render(Outcome("storm", "failed", 5.0, error="Traceback ...\nRuntimeError: boom"))
    assert "storm crashed" in text
    assert "RuntimeError: boom" in text


def test_the_findings_are_carried_in_every_report() -> None:
    assert report.FINDINGS.exists()
    text = _render(Outcome("broker-kill", "ok", 30.0, _result()))
    assert "## What the suite found, and what was fixed" in text
