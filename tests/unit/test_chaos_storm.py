"""The rebalance storm's pure parts: its churn plan, rebalance count and duplicate split."""

from __future__ import annotations

from chaos.checker import Kill
from chaos.ledger import Execution
from chaos.scenarios.storm import (
    ALL,
    Step,
    churn,
    rebalances,
    repeats_by_cause,
)
from pipeline.topology.topics import LAYERS


def alive_after_each(plan: list[Step]) -> list[int]:
    alive: set[str] = set()
    counts = []
    for step in plan:
        if step.action == "start":
            assert step.name not in alive
            alive.add(step.name)
        else:
            alive.remove(step.name)  # only a live extra is stopped
        counts.append(len(alive))
    return counts


def test_churn_keeps_between_zero_and_most_and_ends_with_none() -> None:
    plan = churn(seed=7, steps=200, most=3)
    counts = alive_after_each(plan)
    assert max(counts) == 3
    assert min(counts) >= 0
    assert counts[-1] == 0
    assert len(plan) >= 200


def test_churn_mixes_actions_and_layers() -> None:
    plan = churn(seed=7, steps=200)
    assert {s.action for s in plan} == {"start", "stop", "kill"}
    started = {s.layers for s in plan if s.action == "start"}
    assert ALL in started
    assert started - {ALL} <= set(LAYERS)
    assert len(started) > 3


def test_churn_is_repeatable_per_seed() -> None:
    assert churn(seed=1, steps=30) == churn(seed=1, steps=30)
    assert churn(seed=1, steps=30) != churn(seed=2, steps=30)


def test_a_stop_names_the_stopped_workers_layers_and_signal() -> None:
    plan = churn(seed=5, steps=40)
    layers = {s.name: s.layers for s in plan if s.action == "start"}
    for step in plan:
        assert step.layers == layers[step.name]
    assert Step("stop", "extra-3", ALL).target == "extra-3 all (SIGTERM)"
    assert Step("kill", "extra-4", "flow").target == "extra-4 flow (SIGKILL)"
    assert Step("start", "extra-5", "flow").target == "extra-5 flow"


def test_rebalances_count_generations_beyond_the_first_per_group() -> None:
    logs = [
        "Joined group 'ns.flow' (generation 1) with member_id a\n"
        "Joined group 'ns.flow' (generation 2) with member_id a\n"
        "Joined group 'ns.execution' (generation 1) with member_id a\n",
        "Joined group 'ns.flow' (generation 2) with member_id b\n"  # same rebalance, 2 members
        "Joined group 'ns.flow' (generation 4) with member_id b\n",
        "nothing here",
    ]
    assert rebalances(logs) == {"ns.execution": 0, "ns.flow": 2}
    assert rebalances([]) == {}


def test_repeats_are_put_on_what_happened_to_the_first_runner() -> None:
    kills = [Kill("extra-1 all (SIGTERM)", 10, 100), Kill("extra-2 flow (SIGKILL)", 20, 100)]
    runs = [
        Execution("plain", "e-1", "k0", 0, 1, 10, 90),  # before extra-1's signal, run again
        Execution("plain", "e-1", "k0", 0, 1, 30, 150),
        Execution("plain", "e-2", "k0", 1, 1, 10, 110),  # after it, run twice more
        Execution("plain", "e-2", "k0", 1, 1, 30, 150),
        Execution("plain", "e-2", "k0", 1, 1, 30, 160),
        Execution("ordered", "e-2", "k0", 1, 1, 10, 120),  # after it, not run again
        Execution("plain", "e-3", "k0", 2, 1, 20, 130),  # the SIGKILLed one
        Execution("plain", "e-3", "k0", 2, 1, 30, 160),
        Execution("ordered", "e-3", "k0", 2, 1, 30, 170),  # pid 30 was never stopped
        Execution("ordered", "e-3", "k0", 2, 1, 40, 180),
    ]
    assert repeats_by_cause(kills, runs) == {
        "first run by a SIGKILLed extra": 1,
        "first run by a SIGTERMed extra after the signal": 2,
        "first run by a SIGTERMed extra before the signal": 1,
        "first run by a worker not stopped (a rebalance)": 1,
    }
    assert repeats_by_cause(kills, runs[:1]) == {}
