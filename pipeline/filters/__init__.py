"""Subscriber filters: CEL expressions compiled once, evaluated per event, never eval'd.

Shared by ``topology validate`` (a filter that does not compile is a problem at load) and the
flow-control layer (which evaluates them), so it belongs to neither.
"""

from __future__ import annotations

from pipeline.filters.cel import (
    MATCH,
    NO_MATCH,
    CompiledFilter,
    Verdict,
    compile_filter,
    filter_problem,
    meta_from_headers,
)
from pipeline.filters.errors import FilterError

__all__ = [
    "MATCH",
    "NO_MATCH",
    "CompiledFilter",
    "FilterError",
    "Verdict",
    "compile_filter",
    "filter_problem",
    "meta_from_headers",
]
