"""`msm topology` commands (placeholder, being written)."""

from __future__ import annotations

import click


@click.group()
def topology() -> None:
    """Placeholder."""
