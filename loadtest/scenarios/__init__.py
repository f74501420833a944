"""The scenarios, by name, in the order a full run takes them.

Modules are imported only when their scenario runs, so one that needs a missing tool (or is not
written yet) does not stop the others; the runner skips names whose module does not exist.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from loadtest.model import BenchContext, Result

SCENARIOS: dict[str, str] = {
    "ceilings": "loadtest.scenarios.ceilings",
    "faust": "loadtest.scenarios.faust_hop",
    "msm": "loadtest.scenarios.msm",
    "peers": "loadtest.scenarios.peers",
    "delays": "loadtest.scenarios.delays",
    "scale": "loadtest.scenarios.scale",
}

Scenario = Callable[[BenchContext], list[Result]]


def exists(name: str) -> bool:
    """Whether the scenario's module is there (without importing it)."""
    return importlib.util.find_spec(SCENARIOS[name]) is not None


def load(name: str) -> Scenario:
    module = importlib.import_module(SCENARIOS[name])
    run: Scenario = module.run
    return run
