"""Log tails, and following a log across a roll-over."""

from __future__ import annotations

from pathlib import Path

from pipeline.broker import follow, tail
from pipeline.broker.logs import size


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == ["line 97", "line 98", "line 99"]
    assert tail(log, 0) == []
    assert tail(tmp_path / "missing.log", 5) == []


def test_tail_from_a_mark_skips_older_runs(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_text("old run\n")
    mark = size(log)
    with log.open("a") as fh:
        fh.write("new run\n")
    assert tail(log, 30, mark) == ["new run"]
    assert size(tmp_path / "missing.log") == 0


def test_follow_prints_new_lines_and_survives_a_roll_over(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("a\nb\n")
    lines = follow(log, lines=1, poll_s=0.01)
    assert next(lines) == "b"
    with log.open("a") as fh:
        fh.write("c\n")
    assert next(lines) == "c"
    log.rename(tmp_path / "server.log.1")
    log.write_text("d\n")
    assert next(lines) == "d"
    lines.close()
