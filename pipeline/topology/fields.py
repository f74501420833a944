"""Constrained string types of topology.yaml (names, handler references, URLs) and the error helper.

Validators raise :func:`invalid`, whose context carries what was found and what was expected, so
the loader can report ``found X, expected Y`` without parsing pydantic's messages.
"""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

ERROR_TYPE = "msm_invalid"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,100}")
_EVENT = re.compile(r"(?=.{1,100}\Z)[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_HANDLER = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")


def invalid(found: object, expected: str, field: str = "") -> PydanticCustomError:
    """A validation error with structured found/expected; ``field`` extends the error's path
    (a key, or ``[i]`` for a list index), for errors raised by a model-level validator."""
    return invalid_text(show(found), expected, field)


def invalid_text(found: str, expected: str, field: str = "") -> PydanticCustomError:
    """Like :func:`invalid` with ``found`` already worded for the reader."""
    return PydanticCustomError(
        ERROR_TYPE,
        "found {found}, expected {expected}",
        {"found": found, "expected": expected, "field": field},
    )


def show(value: object) -> str:
    """A short rendering of a YAML value for messages: strings quoted, None as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    # reprlib, not str(): a YAML alias repeated inside aliases (a "billion laughs") is a small
    # file whose full rendering would not be.
    text = repr(value) if isinstance(value, str) else _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxother = 3, 8, 8, 80


def _matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise invalid(value, expected)
        return value

    return AfterValidator(check)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(value, "an http:// or https:// URL with a host")
    return value


def _text(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise invalid(value, "a non-empty string")
    return value


def _name_rule(limit: int) -> str:
    return f"a name of letters, digits, '_' and '-' (at most {limit}), usable in a topic name"


Namespace = Annotated[str, _matching(re.compile(r"[A-Za-z0-9_-]{1,64}"), _name_rule(64))]
EventName = Annotated[
    str,
    _matching(_EVENT, "an event name of dot-separated letters, digits, '_' and '-' (<= 100)"),
]
Token = Annotated[str, _matching(_TOKEN, _name_rule(100))]
HandlerRef = Annotated[str, _matching(_HANDLER, "a handler reference 'package.module:function'")]
DottedName = Annotated[
    str, _matching(_DOTTED, "a dotted exception name like 'builtins.ValueError'")
]
HttpURL = Annotated[str, AfterValidator(_url)]
Text = Annotated[str, BeforeValidator(_text)]
SchemaFile = Annotated[Path, BeforeValidator(_text)]
