"""Pydantic validation errors turned into :class:`Problem` lines a user can act on.

Pydantic's own messages name Python types ("Input should be a valid dictionary or instance of
EventSpec"); the user edits YAML, so each error is reworded as "found X, expected Y" at a YAML path,
and unknown keys list the allowed keys with a did-you-mean.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pipeline.topology.errors import Problem, render_path
from pipeline.topology.fields import ERROR_TYPE, show
from pipeline.topology.models import Topology

RESERVED_KEYS = frozenset({"name", "source_path"})  # filled in by the loader, never by the YAML

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}
_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = [info.alias or name for name, info in model.model_fields.items()]
    return [k for k in keys if k not in RESERVED_KEYS]


def unknown_key(file: str, loc: Sequence[str | int], allowed: Sequence[str]) -> Problem:
    key = str(loc[-1])
    return Problem(
        file,
        render_path(loc),
        f"unknown key {key!r}",
        "one of " + ", ".join(allowed),
        did_you_mean(key, allowed),
    )


def problems_from_validation(exc: ValidationError, file: str) -> list[Problem]:
    """One problem per pydantic error, skipping echoes of a bad mapping key in its ``name``."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if len(loc) == 3 and loc[0] in ("events", "subscribers", "schedules") and loc[2] == "name":
            continue  # the name is the key; the key's own error says it
        if error["type"] == "too_short" and _items_failed(error):
            continue  # some items were invalid, and each has its own error
        if loc and loc[-1] == "[key]":
            loc.pop()
        problems.append(_problem(error, loc, file))
    return problems


def _items_failed(error: ErrorDetails) -> bool:
    given, kept = error.get("input"), (error.get("ctx") or {}).get("actual_length")
    return isinstance(given, list | dict) and isinstance(kept, int) and len(given) > kept


def _problem(error: ErrorDetails, loc: list[str | int], file: str) -> Problem:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        return unknown_key(file, loc, allowed_keys(model) if model else [])
    found, expected = show(value), _expected(error, ctx, value)
    if kind == ERROR_TYPE:
        found, expected = str(ctx["found"]), str(ctx["expected"])
        extra = str(ctx.get("field") or "")
        if extra:
            loc.append(int(extra[1:-1]) if extra.startswith("[") else extra)
    elif kind == "missing":
        found = "nothing"
    return Problem(file, render_path(loc), found, expected)


def _expected(error: ErrorDetails, ctx: dict[str, Any], value: object) -> str:
    kind = error["type"]
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in _BOUNDS:
        return _bound(next(iter(ctx.values())), value, _BOUNDS[kind])
    if kind == "missing":
        return "a value (the key is required)"
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length", ctx.get("max_length"))
        return f"{'at least' if kind == 'too_short' else 'at most'} {limit} item(s)"
    message = error["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _bound(bound: object, value: object, op: str) -> str:
    """``an integer >= 1``, ``a number <= 100``."""
    if isinstance(bound, float) and bound.is_integer():
        return f"a number {op} {int(bound)}"
    if isinstance(bound, int) and isinstance(value, int) and not isinstance(value, bool):
        return f"an integer {op} {bound}"
    return f"a number {op} {bound}"


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (for listing its allowed keys)."""
    current: Any = Topology
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[str(part)].annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
