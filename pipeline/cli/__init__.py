"""The ``msm`` command line: a thin click layer that only calls library functions.

Each command group lives in its own module; this one wires them together and turns
:class:`~pipeline.errors.MSMError` into a readable message and a non-zero exit code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from pipeline.errors import MSMError


class _MSMGroup(click.Group):
    """Reports MSM errors as one clean message (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MSMError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_MSMGroup)
@click.option(
    "--topology",
    "topology_path",
    envvar="MSM_TOPOLOGY",
    default="topology.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The topology file (env MSM_TOPOLOGY).",
)
@click.version_option(package_name="msm")
@click.pass_context
def cli(ctx: click.Context, topology_path: str) -> None:
    """MSM: asynchronous events and tasks on Apache Kafka."""
    ctx.ensure_object(dict)
    ctx.obj["topology_path"] = topology_path


def _register() -> None:
    from pipeline.cli import (
        broker,
        cdc,
        dlq,
        lag,
        produce,
        status,
        subscriber,
        task,
        topology,
        worker,
    )

    cli.add_command(broker.broker)
    cli.add_command(topology.topology)
    cli.add_command(produce.produce)
    cli.add_command(lag.lag)
    cli.add_command(status.status)
    cli.add_command(worker.worker)
    cli.add_command(dlq.dlq)
    cli.add_command(task.task)
    cli.add_command(subscriber.subscriber)
    cli.add_command(cdc.cdc)


_register()


def main() -> None:
    cli(prog_name="msm")
