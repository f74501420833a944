"""CDC sources as a table (``msm cdc status``, ``msm status``) and as JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from pipeline.cdc.state import SourceState
from pipeline.ops.lag_view import JsonValue
from pipeline.topology import Topology


def cdc_document(topology: Topology, name: str, state: SourceState) -> dict[str, JsonValue]:
    spec = topology.cdc[name]
    return {
        "source": name,
        "table": spec.table,
        "event": spec.event,
        "slot": spec.slot_for(topology.namespace),
        "position": state.lsn,
        "status": _status(state),
        "snapshots": [
            {
                "id": j.id,
                "subscriber": j.subscriber,
                "state": j.state,
                "rows": j.rows,
                "after_key": j.after_key,
                "error": j.error,
            }
            for j in state.jobs.values()
        ],
    }


def _status(state: SourceState) -> dict[str, JsonValue] | None:
    s = state.status
    if s is None:
        return None
    return {
        "pace": s.pace,
        "factor": s.factor,
        "backlog": s.backlog,
        "lsn": s.lsn,
        "slot_lag_bytes": s.slot_lag_bytes,
        "events_total": s.events_total,
        "updated_at": _iso(s.updated_at_ms),
        "error": s.error,
    }


def cdc_table(topology: Topology, states: dict[str, SourceState]) -> Table:
    table = Table(
        "source", "table -> event", "position", "pace", "backlog", "slot lag", "snapshots"
    )
    for name, state in states.items():
        spec = topology.cdc[name]
        s = state.status
        pace = "never ran" if s is None else f"{s.pace} ({s.factor:.0%})"
        if s is not None and s.error:
            pace = f"[red]error[/red]: {s.error}"
        jobs = ", ".join(
            f"{j.id} {j.state} {j.rows} rows" + (f" for {j.subscriber}" if j.subscriber else "")
            for j in state.jobs.values()
        )
        table.add_row(
            name,
            f"{spec.table} -> {spec.event}",
            s.lsn if s is not None and s.lsn else "-",
            pace,
            "-" if s is None or s.backlog is None else str(s.backlog),
            "-" if s is None or s.slot_lag_bytes is None else f"{s.slot_lag_bytes} B",
            jobs or "-",
        )
    return table


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
