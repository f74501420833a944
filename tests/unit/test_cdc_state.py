"""``<ns>.cdc`` records: positions, snapshot jobs and status round-trip; junk is skipped."""

from __future__ import annotations

from pipeline.cdc import state as s


def test_records_fold_into_each_sources_latest_state() -> None:
    job = s.SnapshotJob("j1", "items", "mirror", requested_at_ms=5)
    status = s.SourceStatus("items", "slowed", 0.5, 5_500, "0/16B3748", 4096, 12, 99)
    records = [
        s.position_record("items", 100, 1),
        s.job_record(job),
        s.position_record("items", 250, 2),
        s.job_record(job.progressed("42", 10, 7)),
        s.status_record(status),
        s.position_record("other", 7, 3),
        (b"position/items", b"not json"),
        (None, b"{}"),
        (b"junk", b"{}"),
    ]
    states = s.load(records)
    assert states["items"].lsn == 250
    assert states["other"].lsn == 7
    found = states["items"].jobs["j1"]
    assert (found.state, found.after_key, found.rows, found.subscriber) == (
        "running",
        "42",
        10,
        "mirror",
    )
    assert states["items"].status == status


def test_a_finished_job_records_its_outcome_and_a_tombstone_forgets_it() -> None:
    job = s.SnapshotJob("j1", "items", None).progressed("9", 9, 1)
    assert job.finished(2).state == "done"
    failed = job.finished(3, error="table dropped")
    assert (failed.state, failed.error) == ("failed", "table dropped")
    states = s.load([s.job_record(job), (job.record_key.encode(), None)])
    assert states["items"].jobs == {}
