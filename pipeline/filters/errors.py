"""Errors of subscriber filters."""

from __future__ import annotations

from pipeline.errors import ConfigError


class FilterError(ConfigError):
    """A subscriber filter that is not a usable CEL expression; found at ``topology validate``.

    ``reason`` is the library's message without its source excerpt; ``line`` and ``column``
    (1-based) locate the fault when the library reports a position.
    """

    def __init__(
        self, expression: str, reason: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.expression = expression
        self.reason = reason
        self.line = line
        self.column = column
        shown = expression if len(expression) <= 60 else expression[:57] + "..."
        super().__init__(f"filter {shown!r}: {reason}")
