"""A worker whose only agent raises on its first record, run the way `msm worker` runs its apps.

``python -m tests.integration._crash_worker TOPOLOGY`` -- test_worker checks that the process
exits non-zero instead of idling on with a dead agent.
"""

from __future__ import annotations

import sys
from typing import Any

from pipeline.agents.base import raw_topic
from pipeline.topology import load_topology
from pipeline.topology.topics import TopicNames
from pipeline.worker.app import create_app
from pipeline.worker.fatal import fatal
from pipeline.worker.runner import run_apps

AGENT = "crashy"
FAILURE = "injected agent failure"
EVENT = "user.deleted"


def main(topology_path: str, acks: str = "manual") -> None:
    topology = load_topology(topology_path)
    app = create_app(topology, AGENT)
    topic = raw_topic(app, TopicNames(topology.namespace).ingress(EVENT))

    async def explode(stream: Any) -> None:
        async for _event in stream.noack() if acks == "manual" else stream:
            raise RuntimeError(FAILURE)

    app.agent(topic, name=AGENT)(fatal(app, AGENT)(explode))
    run_apps([app])


if __name__ == "__main__":
    main(*sys.argv[1:])
