"""`msm task show ID`: one event's tasks, each subscriber's lifecycle, read from ``<ns>.tasks``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pipeline.errors import MSMError
from pipeline.tasks import TaskRecord, split_task_id
from pipeline.tasks.lifecycle import Step, format_ms, lifecycle
from pipeline.tasks.reader import READ_TIMEOUT_S, read_task_records
from pipeline.topology import load_topology
from pipeline.topology.topics import TopicNames


class TaskNotFoundError(MSMError):
    """No record of the asked event (or of its task for the asked subscriber)."""


@click.group()
def task() -> None:
    """Inspect tasks: one event delivered to one subscriber."""


@task.command()
@click.argument("task_or_event_id")
@click.option("--json", "as_json", is_flag=True, help="Print one machine-readable JSON document.")
@click.option(
    "--timeout-s",
    type=click.FloatRange(min=0.5),
    default=READ_TIMEOUT_S,
    show_default=True,
    help="How long to wait for Kafka without progress.",
)
@click.pass_context
def show(ctx: click.Context, task_or_event_id: str, as_json: bool, timeout_s: float) -> None:
    """Print the lifecycle of an event's tasks: ID is an event id or EVENT_ID/SUBSCRIBER.

    Exits 1 when nothing is recorded for it (unknown id, or past the topic's retention).
    """
    topology = load_topology(Path(ctx.obj["topology_path"]))
    event_id, subscriber = split_task_id(task_or_event_id)
    topic = TopicNames(topology.namespace).tasks
    found = read_task_records(topology.kafka, topic, event_id, timeout_s)
    if not found:
        raise TaskNotFoundError(f"no task of event {event_id!r} in {topic}")
    if subscriber is not None:
        if subscriber not in found:
            known = ", ".join(found)
            raise TaskNotFoundError(
                f"event {event_id!r} has no task for subscriber {subscriber!r} (it has: {known})"
            )
        found = {subscriber: found[subscriber]}
    if as_json:
        click.echo(json.dumps(_as_dict(event_id, found), indent=2))
        return
    console = Console()
    for name, records in found.items():
        console.print(_table(event_id, name, lifecycle(records)))


def _table(event_id: str, subscriber: str, steps: list[Step]) -> Table:
    start = steps[0].at_ms if steps else 0
    table = Table(title=f"{event_id}/{subscriber}", title_justify="left")
    table.add_column("state", no_wrap=True)
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("+s", justify="right", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for step in steps:
        table.add_row(
            step.state,
            format_ms(step.at_ms),
            f"{(step.at_ms - start) / 1000:.3f}",
            "" if step.attempt is None else str(step.attempt),
            step.detail,
        )
    return table


def _as_dict(event_id: str, found: dict[str, list[TaskRecord]]) -> dict[str, object]:
    return {
        "event_id": event_id,
        "tasks": {
            name: {
                "task_id": records[0].task_id,
                "lifecycle": [asdict(s) for s in lifecycle(records)],
                "records": [{**asdict(r), "state": r.state.value} for r in records],
            }
            for name, records in found.items()
        },
    }
