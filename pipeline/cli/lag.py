"""`msm lag` (placeholder, being written)."""

from __future__ import annotations

import click


@click.command()
def lag() -> None:
    """Placeholder."""
