"""How ``msm cdc status`` and ``msm status`` show a source: pace, backlog, position, jobs."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from pipeline.cdc.state import SnapshotJob, SourceState, SourceStatus
from pipeline.ops.cdc_view import cdc_document, cdc_table
from pipeline.topology import load_topology
from tests.fixtures.topologies import with_cdc, write_topology


def test_a_running_source_shows_its_pace_backlog_position_and_jobs(tmp_path: Path) -> None:
    topology = load_topology(write_topology(tmp_path, with_cdc()))
    status = SourceStatus("items", "slowed", 0.5, 5_500, "0/16B3748", 4096, 12, 1_700_000_000_000)
    job = SnapshotJob("j1", "items", "mirror", state="running", after_key="42", rows=42)
    state = SourceState(lsn=0x16B3748, jobs={"j1": job}, status=status)

    document = cdc_document(topology, "items", state)
    assert document["slot"] == "msm_msm_test_items"
    assert document["status"] == {
        "pace": "slowed",
        "factor": 0.5,
        "backlog": 5_500,
        "lsn": "0/16B3748",
        "slot_lag_bytes": 4096,
        "events_total": 12,
        "updated_at": "2023-11-14T22:13:20+00:00",
        "error": None,
    }
    console = Console(width=200, record=True)
    console.print(cdc_table(topology, {"items": state}))
    text = console.export_text()
    for shown in ("items", "slowed (50%)", "5500", "0/16B3748", "4096 B", "j1 running 42 rows"):
        assert shown in text


def test_a_source_that_never_ran_says_so(tmp_path: Path) -> None:
    topology = load_topology(write_topology(tmp_path, with_cdc()))
    console = Console(width=200, record=True)
    console.print(cdc_table(topology, {"items": SourceState()}))
    assert "never ran" in console.export_text()
    assert cdc_document(topology, "items", SourceState())["status"] is None
