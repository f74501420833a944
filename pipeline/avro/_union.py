"""Union conversion: Avro's tagged JSON form ``{"long": 5}`` or the plain value.

A plain value goes to the first branch (in schema order) that accepts it. When none does, the
errors reported are those of the first branch whose type matched but whose content did not (a
``["null", Owner]`` field with a bad ``email`` reports ``owner.email``), else one "wrong type".
When a union holds several named types of one kind (two records), the result uses fastavro's
tuple notation ``(fullname, value)`` so the writer takes the branch that was validated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.avro._field_errors import WRONG_TYPE, Converter, FieldError, describe

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "string": (str,),
    "enum": (str,),
    "bytes": (bytes, bytearray, memoryview, str),
    "fixed": (bytes, bytearray, memoryview, str),
    "array": (list, tuple),
    "map": (Mapping,),
    "record": (Mapping,),
}


@dataclass(frozen=True, slots=True)
class _Branch:
    name: str
    convert: Converter
    accepts: tuple[type, ...] | None  # None: try every value (logical types)
    tagged: bool  # wrap the result as (name, value) for fastavro


def _kind(node: object, named: Mapping[str, str]) -> str:
    if isinstance(node, str):
        return named.get(node, node)
    if isinstance(node, dict):
        if "logicalType" in node:
            return "logical"
        kind = node.get("type")
        return kind if isinstance(kind, str) and kind in _PY_TYPES else _kind(kind, named)
    return "union"


def union_converter(
    branches: list[tuple[str, Converter, object]], named_kinds: Mapping[str, str]
) -> Converter:
    """``named_kinds`` maps named types seen so far to their kind, to resolve references."""
    kinds = [_kind(node, named_kinds) for _, _, node in branches]
    counts = Counter(k for k in kinds if k in ("record", "enum", "fixed"))
    compiled = [
        _Branch(name, convert, _PY_TYPES.get(kind), counts[kind] > 1)
        for (name, convert, _), kind in zip(branches, kinds, strict=True)
    ]
    by_name: dict[str, _Branch] = {}
    for branch in compiled:
        by_name[branch.name] = branch
        by_name.setdefault(branch.name.rsplit(".", 1)[-1], branch)  # short name of a named type
    has_null = "null" in by_name
    expected = "one of [" + ", ".join(b.name for b in compiled) + "]"

    def union(value: object, errors: list[FieldError]) -> object:
        if value is None and has_null:
            return None
        tagged_errors: list[FieldError] | None = None
        if isinstance(value, Mapping) and len(value) == 1:
            key, inner = next(iter(value.items()))
            branch = by_name.get(key)
            if branch is not None:
                attempt: list[FieldError] = []
                out = branch.convert(inner, attempt)
                if not attempt:
                    return (branch.name, out) if branch.tagged else out
                tagged_errors = attempt
        closest: list[FieldError] | None = None
        for branch in compiled:
            if branch.accepts is not None and not isinstance(value, branch.accepts):
                continue
            attempt = []
            out = branch.convert(value, attempt)
            if not attempt:
                return (branch.name, out) if branch.tagged else out
            mismatch = len(attempt) == 1 and not attempt[0].path
            if closest is None and not (mismatch and attempt[0].message == WRONG_TYPE):
                closest = attempt
        chosen = tagged_errors or closest
        if chosen:
            errors.extend(chosen)
        else:
            errors.append(FieldError("", WRONG_TYPE, describe(value), expected))
        return None

    return union
