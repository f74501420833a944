"""`msm lag` against Kafka's own ConsumerGroupCommand, on a real broker, partition by partition."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from pipeline.broker import classpath
from pipeline.cli import cli

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
PER_PARTITION = {0: 10, 1: 4, 2: 1}  # uneven on purpose


@dataclass(frozen=True)
class KafkaRow:
    """One line of ``kafka-consumer-groups --describe``; "-" becomes None."""

    current: int | None
    end: int | None
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None


def kafka_describe(bootstrap: str, group: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = ["java", "-cp", classpath(), CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap]
    cmd += ["--describe", "--group", group, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def parse_offsets(stdout: str) -> dict[tuple[str, int], KafkaRow]:
    rows: dict[tuple[str, int], KafkaRow] = {}
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    header = next((i for i, f in enumerate(lines) if f[:2] == ["GROUP", "TOPIC"]), None)
    if header is None:
        return rows
    assert lines[header][2:6] == ["PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    for fields in lines[header + 1 :]:
        _, topic, partition, current, end, lag, consumer_id, host, client_id = fields
        rows[(topic, int(partition))] = KafkaRow(
            _number(current),
            _number(end),
            _number(lag),
            _text(consumer_id),
            _text(host),
            _text(client_id),
        )
    return rows


def _number(field: str) -> int | None:
    return None if field == "-" else int(field)


def _text(field: str) -> str | None:
    return None if field == "-" else field


def parse_state(stdout: str) -> tuple[str, int]:
    """(STATE, #MEMBERS) from ``--describe --state``."""
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    header = next(i for i, f in enumerate(lines) if f and f[0] == "GROUP")
    fields = lines[header + 1]
    return fields[-2], int(fields[-1])


def msm_lag(bootstrap: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    # A topology path that does not exist: lag must still work, only ungrouped.
    root = ["--topology", str(tmp_path / "absent.yaml"), "lag", "--bootstrap-servers", bootstrap]
    result = CliRunner().invoke(cli, [*root, *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def msm_lag_json(bootstrap: str, tmp_path: Path, group: str) -> dict[str, Any]:
    code, out = msm_lag(bootstrap, tmp_path, "--json", "--group", group)
    assert code == 0, out
    document: dict[str, Any] = json.loads(out)
    return document


def ours(document: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    (group,) = document["groups"]
    return {(t["topic"], p["partition"]): p for t in group["topics"] for p in t["partitions"]}


@pytest.fixture
def filled_topic(kafka_bootstrap: str, topic_factory: Callable[..., str]) -> str:
    topic = topic_factory(partitions=3, prefix="lag")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    for partition, count in PER_PARTITION.items():
        for i in range(count):
            producer.produce(topic, f"m{i}".encode(), partition=partition)
    assert producer.flush(30) == 0
    return topic


@contextmanager
def member(bootstrap: str, group: str, topic: str) -> Iterator[Consumer]:
    """A subscribed consumer that holds all partitions of ``topic`` until the block ends."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "lag-test",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        consumed = 0
        for _ in range(300):  # joins the group, then reads a few messages
            message = consumer.poll(0.1)
            consumed += message is not None and message.error() is None
            if consumed >= 5 and len(consumer.assignment()) == len(PER_PARTITION):
                break
        assert len(consumer.assignment()) == len(PER_PARTITION), "no assignment in 30 s"
        yield consumer
    finally:
        consumer.close()


def assert_same_rows(kafka: dict[tuple[str, int], KafkaRow], document: dict[str, Any]) -> None:
    mine = ours(document)
    assert set(mine) == set(kafka)
    for key, row in kafka.items():
        p = mine[key]
        assert (p["committed"], p["end"], p["lag"]) == (row.current, row.end, row.lag), key
        assert (p["member_id"], p["host"], p["client_id"]) == (
            row.consumer_id,
            row.host,
            row.client_id,
        ), key


def test_committed_group_matches_kafka(
    kafka_bootstrap: str, filled_topic: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    group = unique_name("lag-g")
    commits = {0: 6, 1: 4, 2: 0}
    with member(kafka_bootstrap, group, filled_topic) as consumer:
        offsets = [TopicPartition(filled_topic, p, o) for p, o in commits.items()]
        consumer.commit(offsets=offsets, asynchronous=False)

    kafka = kafka_describe(kafka_bootstrap, group)
    assert kafka.returncode == 0, kafka.stderr
    rows = parse_offsets(kafka.stdout)
    document = msm_lag_json(kafka_bootstrap, tmp_path, group)

    expected = {p: PER_PARTITION[p] - o for p, o in commits.items()}
    assert {k[1]: r.lag for k, r in rows.items()} == expected  # Kafka agrees with the setup
    assert_same_rows(rows, document)
    (g,) = document["groups"]
    assert (g["group"], g["state"], g["members"], g["error"]) == (group, "Empty", 0, None)
    assert g["total_lag"] == document["total_lag"] == sum(r.lag or 0 for r in rows.values()) == 5
    (t,) = g["topics"]
    assert (t["topic"], t["total_lag"], t["uncommitted_partitions"]) == (filled_topic, 5, 0)
    assert document["grouped_by_layer"] is False
    assert "absent.yaml" in document["note"]

    code, table = msm_lag(kafka_bootstrap, tmp_path, "--group", group)
    assert code == 0
    assert group in table
    assert filled_topic in table


def test_active_member_with_partial_commit_matches_kafka(
    kafka_bootstrap: str, filled_topic: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    group = unique_name("lag-a")
    with member(kafka_bootstrap, group, filled_topic) as consumer:
        consumer.commit(offsets=[TopicPartition(filled_topic, 0, 3)], asynchronous=False)
        kafka = kafka_describe(kafka_bootstrap, group)
        document = msm_lag_json(kafka_bootstrap, tmp_path, group)

    assert kafka.returncode == 0, kafka.stderr
    rows = parse_offsets(kafka.stdout)
    # Kafka lists held but uncommitted partitions with "-" as offset and lag.
    assert [rows[(filled_topic, p)].lag for p in range(3)] == [7, None, None]
    assert_same_rows(rows, document)
    (g,) = document["groups"]
    assert (g["state"], g["members"]) == ("Stable", 1)
    assert (g["total_lag"], g["uncommitted_partitions"]) == (7, 2)


def test_group_that_never_committed(
    kafka_bootstrap: str, filled_topic: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    group = unique_name("lag-n")
    with member(kafka_bootstrap, group, filled_topic):
        pass

    kafka = kafka_describe(kafka_bootstrap, group)
    assert kafka.returncode == 0, kafka.stderr
    assert parse_offsets(kafka.stdout) == {}
    assert f"Consumer group '{group}' has no active members." in kafka.stdout + kafka.stderr
    state = kafka_describe(kafka_bootstrap, group, "--state")
    assert state.returncode == 0, state.stderr

    document = msm_lag_json(kafka_bootstrap, tmp_path, group)
    (g,) = document["groups"]
    assert (g["state"], g["members"]) == parse_state(state.stdout) == ("Empty", 0)
    assert (g["topics"], g["total_lag"], g["error"]) == ([], 0, None)


def test_missing_group_is_an_error(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    group = unique_name("lag-missing")
    kafka = kafka_describe(kafka_bootstrap, group)
    assert "not found" in kafka.stdout + kafka.stderr

    code, out = msm_lag(kafka_bootstrap, tmp_path, "--json", "--group", group)
    assert code == 1
    (g,) = json.loads(out)["groups"]
    assert (g["state"], g["topics"]) == ("Dead", [])
    assert "does not exist" in g["error"]


def _topology(tmp_path: Path, namespace: str, bootstrap: str) -> Path:
    schema = {
        "type": "record",
        "name": "JobDone",
        "fields": [{"name": "job_id", "type": "string"}],
    }
    (tmp_path / "job_done.avsc").write_text(json.dumps(schema))
    path = tmp_path / "topology.yaml"
    path.write_text(
        f"namespace: {namespace}\n"
        f"kafka: {{bootstrap_servers: '{bootstrap}'}}\n"
        "events:\n"
        "  job.done: {schema: job_done.avsc, partitions: 1}\n"
        "subscribers:\n"
        "  worker: {events: [job.done], handler: examples.handlers:cleanup}\n"
    )
    return path


def test_rows_grouped_by_layer_with_a_topology(
    kafka_bootstrap: str,
    admin: AdminClient,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = unique_name("lagns")
    ingress, execution = f"{namespace}.in.job.done", f"{namespace}.exec.worker"
    front, worker = unique_name("lag-front"), unique_name("lag-worker")
    monkeypatch.delenv("MSM_BOOTSTRAP_SERVERS", raising=False)
    topology = _topology(tmp_path, namespace, kafka_bootstrap)
    futures = admin.create_topics([NewTopic(t, 1, 1) for t in (ingress, execution)])
    for future in futures.values():
        future.result(timeout=30)
    try:
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for topic in (ingress, execution):
            for i in range(3):
                producer.produce(topic, f"m{i}".encode(), partition=0)
        assert producer.flush(30) == 0
        for group, topic, offset in ((front, ingress, 1), (worker, execution, 0)):
            consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
            consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
            consumer.close()

        args = ["--topology", str(topology), "lag", "--group", worker, "--group", front]
        result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert document["grouped_by_layer"] is True
        assert document["note"] is None
        roles = {
            g["group"]: [(t["topic"], t["layer"], t["owner"], t["total_lag"]) for t in g["topics"]]
            for g in document["groups"]
        }
        assert roles == {
            front: [(ingress, "frontend", "job.done", 2)],
            worker: [(execution, "execution", "worker", 3)],
        }
        assert document["total_lag"] == 5

        table = CliRunner().invoke(cli, args, catch_exceptions=False, terminal_width=200)
        assert table.exit_code == 0, table.output
        assert table.stdout.index("frontend") < table.stdout.index("execution")
    finally:
        for future in admin.delete_topics([ingress, execution]).values():
            future.result(timeout=30)
