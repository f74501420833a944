"""Field errors of record validation and the converter signature (see pipeline.avro.records).

A converter takes a value and a list of errors, returns the converted value and appends a
:class:`FieldError` (path relative to itself) for everything wrong. A parent prefixes its
children's new errors with the field name, index or map key only when there are some, so valid
records pay for no path strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

WRONG_TYPE = "wrong type"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem: the field's path, what is wrong, what was found and what was expected."""

    path: str
    message: str
    found: str | None = None
    expected: str | None = None

    def __str__(self) -> str:
        detail = ", ".join(
            part
            for part in (
                f"expected {self.expected}" if self.expected else "",
                f"found {self.found}" if self.found else "",
            )
            if part
        )
        return f"{self.path or '<root>'}: {self.message}" + (f" ({detail})" if detail else "")


Converter = Callable[[object, list[FieldError]], object]


def describe(value: object) -> str:
    """A short JSON-flavoured description of a value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return "string " + json.dumps(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, bytes | bytearray):
        return f"bytes ({len(value)})"
    if isinstance(value, list | tuple):
        return f"array of {len(value)}"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def join(segment: str, rest: str) -> str:
    if not rest:
        return segment
    return segment + rest if rest.startswith("[") else f"{segment}.{rest}"


def prefix(errors: list[FieldError], start: int, segment: str) -> None:
    for i in range(start, len(errors)):
        errors[i] = replace(errors[i], path=join(segment, errors[i].path))


def type_name(node: object) -> str:
    """How a branch is named in Avro's JSON union form and in messages."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        if "logicalType" in node or node.get("type") not in ("record", "enum", "fixed"):
            return type_name(node["type"])
        return str(node["name"])
    if isinstance(node, list):
        return " | ".join(type_name(n) for n in node)
    return str(node)


def expected_name(node: object) -> str:
    """A type as messages name it: logical types by their logical name."""
    if isinstance(node, dict) and isinstance(node.get("logicalType"), str):
        return f"{node['logicalType']} {type_name(node)}"
    if isinstance(node, list):
        return " | ".join(expected_name(n) for n in node)
    return type_name(node)


def wrong(errors: list[FieldError], value: object, expected: str) -> None:
    errors.append(FieldError("", WRONG_TYPE, describe(value), expected))
