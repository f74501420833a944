"""Throwaway topics for one measurement: unique names, created up front, always deleted.

Created explicitly (not by auto-create) so every system gets the same partition count as MSM's
own topics, and a topic that already has data from an earlier run can never be measured.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6  # what `msm topology apply` gives MSM's topics
_TIMEOUT_S = 30.0


def unique(prefix: str) -> str:
    return f"bench.{prefix}.{uuid.uuid4().hex[:10]}"


@contextmanager
def throwaway(
    bootstrap: str, names: list[str], partitions: int = PARTITIONS
) -> Iterator[list[str]]:
    """Create ``names`` (and wait for their leaders); delete them on exit, even on failure."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 5})  # no info chatter
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    try:
        for future in admin.create_topics(new, operation_timeout=_TIMEOUT_S).values():
            future.result(timeout=_TIMEOUT_S)
        _wait_for_leaders(admin, names, partitions)
        yield names
    finally:
        for future in admin.delete_topics(names, operation_timeout=_TIMEOUT_S).values():
            with suppress(Exception):
                future.result(timeout=_TIMEOUT_S)


def _wait_for_leaders(admin: AdminClient, names: list[str], partitions: int) -> None:
    for _ in range(100):
        topics = admin.list_topics(timeout=_TIMEOUT_S).topics
        ready = all(
            n in topics
            and len(topics[n].partitions) == partitions
            and all(p.leader >= 0 for p in topics[n].partitions.values())
            for n in names
        )
        if ready:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topics {names} have no leaders after creation")
