"""Scenario 2: a bare Faust agent forwarding events through one hop (the framework's own cost).

The app is :mod:`loadtest.faust_app` (what a plain Faust user writes: ``async for`` with
auto-ack, ``await topic.send`` per event), run as a ``faust worker`` subprocess; the harness
measures it exactly like the raw confluent-kafka hop (:mod:`loadtest.hop_bench`).
"""

from __future__ import annotations

from pathlib import Path

from loadtest.hop_bench import Hop, measure
from loadtest.model import BenchContext, Result
from loadtest.subproc import Proc

NOTES = (
    "faust-streaming worker, one agent: async for key, value in stream.items() (auto-ack), "
    "await topic.send per event; raw bytes, Faust defaults (acks=all, not idempotent)"
)


def _start(ctx: BenchContext, src: str, dst: str, group: str, log: Path) -> Proc:
    env = {
        "BENCH_FAUST_APP": group,  # the app id is the consumer group: fresh on every run
        "BENCH_FAUST_BOOTSTRAP": ctx.bootstrap,
        "BENCH_FAUST_SRC": src,
        "BENCH_FAUST_DST": dst,
        "BENCH_FAUST_DATADIR": str(ctx.work_dir / "faust-data"),
    }
    return Proc("loadtest.faust_app", ["worker", "-l", "info"], log, env=env)


def run(ctx: BenchContext) -> list[Result]:
    return measure(ctx, Hop("faust", "faust", _start, NOTES))
