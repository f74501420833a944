"""Checks across the topology that one model cannot make alone: schema files, keys, references.

They run on the raw YAML data, next to pydantic validation and not after it, so a typo in one
subscriber does not hide a missing schema file elsewhere: the user sees every problem at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.avro.records import RecordError, to_avro
from pipeline.avro.schemas import LoadedSchema, SchemaError, check_compatibility, load_schema
from pipeline.filters.cel import EXPECTED as FILTER_EXPECTED
from pipeline.filters.cel import filter_problem
from pipeline.topology.cdc_checks import check_cdc
from pipeline.topology.errors import Problem, render_path
from pipeline.topology.problems import did_you_mean

Loc = tuple[str | int, ...]


def check_references(raw: Mapping[object, object], base_dir: Path, file: str) -> list[Problem]:
    """Schema files load, keys exist, old schemas are readable, events referenced are declared."""
    problems: list[Problem] = []
    events = _mapping(raw.get("events"))
    schemas: dict[str, LoadedSchema] = {}
    for name, spec in events.items():
        problems.extend(_check_event(str(name), _mapping(spec), base_dir, file, schemas))
    problems.extend(_check_name_collisions([str(n) for n in events], file))
    known = sorted(str(name) for name in events)
    for name, spec in _mapping(raw.get("subscribers")).items():
        found = filter_problem(_mapping(spec).get("filter"))  # CEL that does not compile
        if found:
            loc = render_path(("subscribers", str(name), "filter"))
            problems.append(Problem(file, loc, found, FILTER_EXPECTED))
        refs = _mapping(spec).get("events")
        for i, event in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(event, str) and event not in known:
                problems.append(
                    _unknown_event(file, ("subscribers", str(name), "events", i), event, known)
                )
    for name, spec in _mapping(raw.get("schedules")).items():
        event = _mapping(spec).get("event")
        if isinstance(event, str) and event not in known:
            problems.append(_unknown_event(file, ("schedules", str(name), "event"), event, known))
        elif isinstance(event, str) and event in schemas:
            payload = _mapping(spec).get("payload", {})
            problems.extend(_check_payload(file, str(name), schemas[event], payload))
    problems.extend(check_cdc(raw, schemas, known, file))
    return problems


def _check_payload(file: str, name: str, schema: LoadedSchema, payload: object) -> list[Problem]:
    """A schedule's payload must be a valid event, or every tick would fail at run time."""
    try:
        to_avro(schema, payload)
    except RecordError as exc:
        base = render_path(("schedules", name, "payload"))
        return [
            Problem(
                file,
                f"{base}.{e.path}" if e.path else base,
                e.found or e.message,
                f"{e.expected} ({e.message})" if e.expected else f"not: {e.message}",
            )
            for e in exc.errors
        ]
    return []


def _check_event(
    name: str,
    spec: Mapping[object, object],
    base_dir: Path,
    file: str,
    schemas: dict[str, LoadedSchema],
) -> list[Problem]:
    problems: list[Problem] = []
    loc: Loc = ("events", name)
    current = _load(spec.get("schema"), base_dir, file, (*loc, "schema"), problems)
    if current is not None:
        schemas[name] = current
    key = spec.get("key")
    if current is not None and isinstance(key, str) and key.strip():
        fields = current.field_names
        if key not in fields:
            where = f"a top-level field of {current.source}"
            expected = f"{where} ({', '.join(fields)})" if fields else f"{where}, which has none"
            problems.append(
                Problem(
                    file, render_path((*loc, "key")), repr(key), expected, did_you_mean(key, fields)
                )
            )
    previous = spec.get("previous_schemas")
    for i, path in enumerate(previous if isinstance(previous, list) else []):
        old = _load(path, base_dir, file, (*loc, "previous_schemas", i), problems)
        if current is None or old is None:
            continue
        issues = check_compatibility(current, old)
        if issues:
            problems.append(
                Problem(
                    file,
                    render_path((*loc, "previous_schemas", i)),
                    f"data written with {old.source} that {current.source} cannot read: "
                    + "; ".join(issues),
                    "older schema versions that the current schema can read "
                    "(new fields need defaults; types may only widen)",
                )
            )
    return problems


def _load(
    value: object, base_dir: Path, file: str, loc: Loc, problems: list[Problem]
) -> LoadedSchema | None:
    if not isinstance(value, str) or not value.strip():
        return None  # a type error, which pydantic reports
    try:
        return load_schema(base_dir / value)
    except SchemaError as exc:
        problems.append(
            Problem(
                file,
                render_path(loc),
                f"{exc.source} ({exc.reason})",
                "a readable Avro schema file",
            )
        )
        return None


def _check_name_collisions(names: list[str], file: str) -> list[Problem]:
    """Kafka refuses topics whose names differ only in '.' versus '_' (metric names collide)."""
    seen: dict[str, str] = {}
    problems = []
    for name in names:
        other = seen.setdefault(name.replace(".", "_"), name)
        if other != name:
            problems.append(
                Problem(
                    file,
                    render_path(("events", name)),
                    f"an event name that collides with {other!r} in Kafka ('.' and '_' clash)",
                    "event names that differ in more than '.' versus '_'",
                )
            )
    return problems


def _unknown_event(file: str, loc: Loc, event: str, known: list[str]) -> Problem:
    expected = "one of the declared events: " + ", ".join(known) if known else "a declared event"
    return Problem(
        file, render_path(loc), f"unknown event {event!r}", expected, did_you_mean(event, known)
    )


def _mapping(value: object) -> Mapping[object, object]:
    return value if isinstance(value, dict) else {}
