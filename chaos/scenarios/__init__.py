"""The scenarios, by name, in the order a full run takes them.

Each is ``run(ctx) -> ScenarioResult``: it drives load and faults through a
:func:`chaos.harness.chaos_pipeline`, waits until every acknowledged event ran (or nothing
moves for a while), lets late repeats land, and hands the ledger to the checker.
"""

from __future__ import annotations

from collections.abc import Callable

from chaos.model import ChaosContext, ScenarioResult
from chaos.scenarios.broker import broker_kill
from chaos.scenarios.endpoint import slow_endpoint
from chaos.scenarios.kill_layers import kill_layers
from chaos.scenarios.poison import failing_handlers
from chaos.scenarios.storm import rebalance_storm

Scenario = Callable[[ChaosContext], ScenarioResult]

SCENARIOS: dict[str, Scenario] = {
    "kill-layers": kill_layers,
    "broker-kill": broker_kill,
    "rebalance-storm": rebalance_storm,
    "failing-handlers": failing_handlers,
    "slow-endpoint": slow_endpoint,
}
