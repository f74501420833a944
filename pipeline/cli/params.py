"""Option callbacks shared by several commands."""

from __future__ import annotations

import click

from pipeline.ops.dlq import parse_since


def since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    """An ISO-8601 time or a duration ago (``2h``) as a datetime; a usage error names the
    expected forms."""
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected {exc}, got {value!r}") from None
