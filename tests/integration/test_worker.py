"""`msm worker` as a process: crashes are loud, a SIGKILL loses nothing, workers share the work."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import headers as h
from pipeline.cli import cli
from pipeline.ops.lag import GroupLag, collect_lag
from pipeline.topology import Topology
from pipeline.topology.topics import TopicNames
from tests.fixtures.topologies import write_topology
from tests.integration import _crash_worker
from tests.integration._worker_proc import (
    Sent,
    as_json,
    file_uploaded,
    frontend_document,
    group,
    produce,
)
from tests.worker_support import REPO, TopicReader, Worker, applied_topology

FRONTEND = ["frontend"]


def _events(count: int, keys: int, tag: str) -> list[Sent]:
    """file.uploaded events as JSON, each with its own id (msm.id) and one of ``keys`` keys."""
    keyed = [(f"{tag}-k{i % keys}", i) for i in range(count)]
    return [
        (k.encode(), as_json(file_uploaded(k, size=i)), [(h.EVENT_ID, f"{tag}-{i}".encode())])
        for k, i in keyed
    ]


def _ids(records: list[Sent]) -> set[bytes]:
    return {dict(headers)[h.EVENT_ID] for _, _, headers in records}


def _accepted_ids(reader: TopicReader) -> list[bytes]:  # accepted and due now: on ready
    return [r.header[h.EVENT_ID] for r in reader.records]


def _settled(admin: AdminClient, group: str, timeout_s: float = 20.0) -> GroupLag:
    """The group's lag once it is 0 with every non-empty partition committed at its end."""
    deadline = time.monotonic() + timeout_s
    while True:
        [found] = collect_lag(admin, [group]).groups
        parts = [p for t in found.topics for p in t.partitions if p.end]
        if found.error is None and parts and all(p.committed == p.end for p in parts):
            assert found.lag == 0
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"lag of {group} did not return to 0: {found}")
        time.sleep(0.2)


def test_sigkill_right_after_publishing_loses_nothing(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    with applied_topology(tmp_path, frontend_document(), kafka_bootstrap, admin) as topology:
        names = TopicNames(topology.namespace)
        ingress = names.ingress("file.uploaded")
        with TopicReader(kafka_bootstrap, names.ready, 3) as accepted:
            with Worker(topology, FRONTEND, tmp_path / "first.log") as first:
                first.wait_ready()
                before = _events(6000, 30, "a")
                produce(kafka_bootstrap, ingress, before)
                accepted.wait_for(lambda rs: len(rs) > 0, "the first accepted event")
                first.kill()
                seen_at_kill = len(accepted.records)
            after = _events(500, 30, "b")
            produce(kafka_bootstrap, ingress, after)  # published while no worker runs
            with Worker(topology, FRONTEND, tmp_path / "second.log") as second:
                print(f"restart ready after {second.wait_ready():.2f} s")
                wanted = _ids(before) | _ids(after)
                accepted.wait_for(lambda rs: wanted <= set(_accepted_ids(accepted)), "every event")
                settled = _settled(admin, group(topology, "frontend"))
                assert second.stop() == 0, second.tail()
        print(f"{seen_at_kill} accepted when killed; {len(accepted.records)} after (dups ok)")
        assert seen_at_kill < len(before), "the kill should land while work is in flight"
        assert settled.members == 1


def test_two_workers_share_the_frontend_and_process_each_event_once(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    document = frontend_document(partitions=4)
    with applied_topology(tmp_path, document, kafka_bootstrap, admin) as topology:
        names = TopicNames(topology.namespace)
        ingress = names.ingress("file.uploaded")
        workers = [Worker(topology, FRONTEND, tmp_path / f"w{i}.log") for i in range(2)]
        accepted = TopicReader(kafka_bootstrap, names.ready, 4)
        try:
            for w in workers:
                w.wait_ready()
            owners = _wait_for_two_owners(admin, topology, ingress)
            sent = _events(800, 40, "p")
            produce(kafka_bootstrap, ingress, sent)
            accepted.wait_for(lambda rs: _ids(sent) <= set(_accepted_ids(accepted)), "every event")
            _settled(admin, group(topology, "frontend"))
            accepted.poll(0.5)  # duplicates, if any, were on the topic before the commit
        finally:
            for w in workers:
                w.proc.terminate()  # both at once: stopping takes a second or two each
            for w in workers:
                w.proc.wait(20)  # a second SIGTERM (stop's) would kill one mid-shutdown
            codes = [w.stop() for w in workers]
            accepted.close()
        assert codes == [0, 0]
        assert len(owners) == 2
        assert all(owners.values()), owners
        ids = _accepted_ids(accepted)
        assert len(ids) == len(set(ids)) == len(sent), "each event exactly once without a crash"


def _wait_for_two_owners(
    admin: AdminClient, topology: Topology, topic: str, timeout_s: float = 30.0
) -> dict[str, set[int]]:
    """member id -> its partitions of ``topic``, once the group is stable with two members."""
    name = group(topology, "frontend")
    deadline = time.monotonic() + timeout_s
    while True:
        description = admin.describe_consumer_groups([name])[name].result(timeout=10)
        owners = {
            m.member_id: {p.partition for p in m.assignment.topic_partitions if p.topic == topic}
            for m in description.members
        }
        if description.state.name == "STABLE" and len(owners) == 2 and all(owners.values()):
            return owners
        if time.monotonic() > deadline:
            raise AssertionError(f"no stable group of two: {description.state} {owners}")
        time.sleep(0.2)


def test_an_agent_crash_exits_non_zero_and_commits_nothing(
    tmp_path: Path, kafka_bootstrap: str, admin: AdminClient
) -> None:
    with applied_topology(tmp_path, frontend_document(), kafka_bootstrap, admin) as topology:
        topic = TopicNames(topology.namespace).ingress(_crash_worker.EVENT)
        produce(kafka_bootstrap, topic, [(b"k", b"first", []), (b"k", b"second", [])])
        # An auto-acked stream: Faust acks the record that raised, so only fatal() keeps it.
        module = "tests.integration._crash_worker"
        command = [sys.executable, "-m", module, str(topology.source_path), "auto"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert f"agent {_crash_worker.AGENT} crashed" in done.stderr
        assert _crash_worker.FAILURE in done.stderr
        crashy = group(topology, _crash_worker.AGENT)
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": crashy})
        try:
            [committed] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        finally:
            consumer.close()
        assert committed.offset < 0, "the record that crashed the agent must be seen again"


def _msm(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _unapplied(directory: Path, bootstrap: str) -> tuple[str, Path]:
    """A valid topology whose topics were never created."""
    namespace = f"unapplied-{uuid.uuid4().hex[:8]}"
    document = {**frontend_document(), "namespace": namespace}
    document["kafka"] = {"bootstrap_servers": bootstrap}
    return namespace, write_topology(directory, document)


def test_a_missing_topology_file_exits_1_with_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, output = _msm("--topology", str(missing), "worker")
    assert code == 1
    assert output.startswith("error: ")
    assert str(missing) in output
    assert "no such file" in output


def test_an_unknown_layer_exits_1_naming_the_valid_ones(tmp_path: Path) -> None:
    _, path = _unapplied(tmp_path, "localhost:9092")
    code, output = _msm("--topology", str(path), "worker", "--layers", "frontend,bogus")
    assert code == 1
    for name in ("bogus", "frontend", "scheduler"):
        assert name in output


def test_a_topology_never_applied_exits_1_naming_missing_topics(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    namespace, path = _unapplied(tmp_path, kafka_bootstrap)
    code, output = _msm("--topology", str(path), "worker", "--layers", "frontend")
    assert code == 1
    assert f"{namespace}.in.file.uploaded" in output
    assert "msm topology apply" in output
