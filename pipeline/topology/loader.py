"""Load topology.yaml into a :class:`Topology`, reporting every problem in it at once.

Validation runs once, here: the structure by pydantic, cross-references and schema files by
:mod:`pipeline.topology.checks`, both on the same raw data so neither hides the other's findings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.topology.checks import check_references
from pipeline.topology.errors import Problem, TopologyError
from pipeline.topology.fields import show
from pipeline.topology.models import EventSpec, ScheduleSpec, Topology
from pipeline.topology.problems import (
    RESERVED_KEYS,
    allowed_keys,
    problems_from_validation,
    unknown_key,
)
from pipeline.topology.subscribers import SubscriberSpec

BOOTSTRAP_ENV = "MSM_BOOTSTRAP_SERVERS"
_SECTIONS = ("events", "subscribers", "schedules")


def load_topology(path: Path | str) -> Topology:
    """Read, validate and resolve a topology file; raises TopologyError listing every problem.

    Schema paths are resolved against the file's directory. ``$MSM_BOOTSTRAP_SERVERS``, when set,
    overrides ``kafka.bootstrap_servers``.
    """
    path = Path(path)
    file = str(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else "a list" if isinstance(raw, list) else show(raw)
        raise TopologyError([Problem(file, "<top>", found, "a mapping with an 'events' key")])
    problems = _reserved_key_problems(raw, file)
    topology: Topology | None = None
    try:
        topology = Topology.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, file))
    problems.extend(check_references(raw, path.parent, file))
    if problems or topology is None:
        raise TopologyError(_first_per_path(problems))
    kafka = topology.kafka
    bootstrap = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if bootstrap:
        kafka = kafka.model_copy(update={"bootstrap_servers": bootstrap})
    return topology.model_copy(update={"source_path": path.absolute(), "kafka": kafka})


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain YAML loading silently overwrites."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_pairs(node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> object:
    """The YAML document in ``path``; syntax errors become a problem with line and column."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(
            [Problem(file, "<file>", "no such file", "a topology YAML file")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([Problem(file, "<file>", str(exc), "a readable UTF-8 file")]) from None
    try:
        loader = _Loader(text)  # its reader refuses control characters already
    except yaml.YAMLError as exc:
        raise TopologyError([Problem(file, "<file>", str(exc), "valid YAML")]) from None
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        found = exc.problem or "invalid YAML"
        raise TopologyError([Problem(file, where, found, "valid YAML")]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([Problem(file, "<file>", str(exc), "valid YAML")]) from None
    finally:
        loader.dispose()


def _reserved_key_problems(raw: dict[Any, Any], file: str) -> list[Problem]:
    """Keys the loader fills in itself (names come from mapping keys) may not appear in YAML."""
    problems = []
    if "source_path" in raw:
        problems.append(unknown_key(file, ["source_path"], allowed_keys(Topology)))
        del raw["source_path"]
    models: dict[str, type[BaseModel]] = {
        "events": EventSpec,
        "subscribers": SubscriberSpec,
        "schedules": ScheduleSpec,
    }
    for section in _SECTIONS:
        entries = raw.get(section)
        for key, spec in entries.items() if isinstance(entries, dict) else ():
            for reserved in RESERVED_KEYS & set(spec if isinstance(spec, dict) else ()):
                problems.append(
                    unknown_key(file, [section, str(key), reserved], allowed_keys(models[section]))
                )
                del spec[reserved]
    return problems


def _first_per_path(problems: list[Problem]) -> list[Problem]:
    """Pydantic and the cross-checks can both flag a spot (a malformed event name): say it once."""
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if problem.path not in seen:
            seen.add(problem.path)
            unique.append(problem)
    return unique
