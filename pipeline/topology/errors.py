"""Topology errors: every problem in a topology file, reported together.

A user fixing topology.yaml should see all of its problems in one run, each pointing at the
YAML path to edit, rather than one problem per run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError, MSMError

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def render_path(parts: Iterable[str | int]) -> str:
    """A YAML path for humans: ``subscribers.thumbnailer.retry.max_attempts``.

    List indexes render as ``[0]``. Keys that are not plain tokens, notably event names, which
    contain dots, render in brackets so the dots stay unambiguous:
    ``events["file.uploaded"].partitions``. The top level renders as ``<top>``.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out or "<top>"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a topology: where (file, YAML path), what was found, what was expected."""

    file: str
    path: str
    found: str
    expected: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.path}: found {self.found}, expected {self.expected}"
        return f"{text}; {self.hint}" if self.hint else text


class TopologyError(ConfigError):
    """The topology is invalid; ``problems`` lists everything wrong with it (structure first,
    then schema files and cross-references), one line each in ``str()``."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ApplyError(MSMError):
    """Kafka refused a topic change (for example a bad config value); retrying will not help."""
