"""Errors of the operator tools."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pipeline.errors import MSMError


class OpsError(MSMError):
    """Kafka refused or failed an operator query (other than being unreachable)."""


def unknown_name(kind: str, plural: str, name: str, known: Iterable[str]) -> str:
    """``unknown <kind> 'x'; did you mean 'y'? (<plural>: a, b)``: what an operator command says
    about a name the topology does not have."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} ({plural}: {', '.join(names) or 'none'})"
