"""`msm produce` (placeholder, being written)."""

from __future__ import annotations

import click


@click.command()
def produce() -> None:
    """Placeholder."""
