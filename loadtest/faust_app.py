"""A bare Faust app, written the way the Faust docs show: one agent forwarding topic A to B.

Run as ``python -m loadtest.faust_app worker -l info`` with ``BENCH_FAUST_*`` variables naming the
app (its consumer group), the broker and the topics. It is the framework's own cost for one hop:
raw bytes (no codec), ``async for`` over the stream with Faust's auto-ack, ``await topic.send``
per event, Faust's default producer (acks=all, not idempotent) and commit settings. Only the web
server is off (several workers on one machine would fight over its port) and the leader topic
(one worker needs no leader election, and the harness would have to delete it).
The app is built at import, as in every Faust example: never import this module elsewhere.
"""

from __future__ import annotations

import os
from typing import Any

import faust

app = faust.App(
    os.environ.get("BENCH_FAUST_APP", "bench-faust-hop"),
    broker=f"kafka://{os.environ.get('BENCH_FAUST_BOOTSTRAP', 'localhost:9092')}",
    datadir=os.environ.get("BENCH_FAUST_DATADIR", "/tmp/bench-faust-data"),  # noqa: S108
    value_serializer="raw",
    key_serializer="raw",
    web_enabled=False,
    topic_disable_leader=True,
)
source = app.topic(os.environ.get("BENCH_FAUST_SRC", "bench.faust.a"))
sink = app.topic(os.environ.get("BENCH_FAUST_DST", "bench.faust.b"))


@app.agent(source)
async def forward(stream: Any) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value)


if __name__ == "__main__":
    app.main()
