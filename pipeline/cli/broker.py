"""`msm broker start|stop|status|logs|fetch`: prints what pipeline.broker returns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import broker as lib

F = TypeVar("F", bound=Callable[..., Any])


def _settings_options(func: F) -> F:
    """The options that pick a broker; every subcommand takes them so they find the same one."""
    options = [
        click.option("--port", type=int, default=9092, show_default=True, help="Client port."),
        click.option(
            "--controller-port", type=int, default=None, help="KRaft controller port [port + 1]."
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Data, config, logs and pid file [~/.cache/msm/broker-PORT].",
        ),
        click.option(
            "--timeout-s", type=float, default=60.0, show_default=True, help="Start-up timeout."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(
    port: int, controller_port: int | None, state_dir: Path | None, timeout_s: float
) -> lib.BrokerSettings:
    return lib.BrokerSettings(
        port=port, controller_port=controller_port or 0, state_dir=state_dir, timeout_s=timeout_s
    )


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def broker() -> None:
    """Run a local single-node Kafka broker (jars from Maven Central, no Docker)."""


@broker.command()
@_settings_options
def start(port: int, controller_port: int | None, state_dir: Path | None, timeout_s: float) -> None:
    """Start the broker in the background; returns once it answers."""
    result = lib.start(_settings(port, controller_port, state_dir, timeout_s), _progress)
    if result.outcome == "started":
        click.echo(
            f"broker started (pid {result.pid}) on {result.bootstrap} "
            f"in {result.elapsed_s:.1f} s; log: {result.log_file}"
        )
    elif result.outcome == "already_running":
        click.echo(f"broker already running (pid {result.pid}) on {result.bootstrap}")
    else:
        click.echo(
            f"a Kafka broker already answers on {result.bootstrap} (not started by msm from "
            "this state dir); not starting another"
        )


@broker.command()
@_settings_options
def stop(port: int, controller_port: int | None, state_dir: Path | None, timeout_s: float) -> None:
    """Stop the broker: SIGTERM for a controlled shutdown, SIGKILL after 30 s."""
    result = lib.stop(_settings(port, controller_port, state_dir, timeout_s))
    if result.outcome == "not_running":
        click.echo("broker is not running")
    elif result.outcome == "stopped":
        click.echo(f"broker stopped (pid {result.pid}) in {result.elapsed_s:.1f} s")
    else:
        click.echo(f"broker did not shut down in time; killed (pid {result.pid})")


@broker.command()
@_settings_options
def status(
    port: int, controller_port: int | None, state_dir: Path | None, timeout_s: float
) -> None:
    """Say whether the broker runs and answers."""
    result = lib.status(_settings(port, controller_port, state_dir, timeout_s))
    answering = "yes" if result.answering else "no"
    if result.running:
        click.echo(
            f"running (pid {result.pid}) on {result.bootstrap}, answering: {answering}; "
            f"log: {result.log_file}"
        )
    elif result.answering:
        click.echo(f"stopped (but another Kafka broker answers on {result.bootstrap})")
    else:
        click.echo("stopped")


@broker.command()
@_settings_options
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="Lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to end).")
def logs(
    port: int,
    controller_port: int | None,
    state_dir: Path | None,
    timeout_s: float,
    lines: int,
    follow: bool,
) -> None:
    """Print the tail of the broker's log."""
    settings = _settings(port, controller_port, state_dir, timeout_s)
    if not settings.log_file.exists():
        raise lib.BrokerError(f"no broker log at {settings.log_file} (never started here?)")
    if not follow:
        for line in lib.tail(settings.log_file, lines):
            click.echo(line)
        return
    try:
        for line in lib.follow(settings.log_file, lines):
            click.echo(line)
    except KeyboardInterrupt:
        pass


@broker.command()
def fetch() -> None:
    """Only resolve the broker's jars (Maven Central, cached), e.g. before tests in CI."""
    click.echo(f"Kafka {lib.KAFKA_VERSION} jars in {lib.ensure_jars(lib.BrokerSettings())}")
