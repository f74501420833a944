"""Cross checks of ``cdc:`` sources: the event exists and its schema has the change-event shape.

A CDC event carries one row change (see docs/cdc.md): ``op`` (``c``, ``u``, ``d`` or ``r`` for
a snapshot read), ``before`` and ``after`` (the row as a nullable record, both the same record
type), ``lsn`` (the commit's position, string ``"0/16B3748"`` or long) and ``commit_time``
(a timestamp, long or string). ``source``, ``table`` and ``xid`` are filled in when declared;
any other field needs a default. Checked at load, so a mismatch is a topology error naming the
YAML path, not a failure on the first change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.avro.schemas import LoadedSchema
from pipeline.topology.cdc import slot_name
from pipeline.topology.errors import Problem, render_path

OPS = ("c", "u", "d", "r")
OPTIONAL = {"source": ("string",), "table": ("string",), "xid": ("long", "int", "string")}
_REQUIRED = {
    "op": ("string", "enum"),
    "before": ("record",),
    "after": ("record",),
    "lsn": ("string", "long"),
    "commit_time": ("long", "string"),
}
SHAPE = (
    "a change-event record: op (string or enum of c, u, d, r), before and after "
    "(['null', <row record>]), lsn (string or long), commit_time (long timestamp or string)"
)


def check_cdc(
    raw: Mapping[object, object], schemas: Mapping[str, LoadedSchema], known: list[str], file: str
) -> list[Problem]:
    problems: list[Problem] = []
    sources = raw.get("cdc")
    if not isinstance(sources, dict):
        return problems
    slots: dict[str, str] = {}
    namespace = str(raw.get("namespace", "msm"))
    for name, spec in sources.items():
        if not isinstance(spec, dict):
            continue
        event = spec.get("event")
        loc = ("cdc", str(name), "event")
        if isinstance(event, str) and event not in known:
            expected = "one of the declared events: " + ", ".join(known)
            problems.append(Problem(file, render_path(loc), f"unknown event {event!r}", expected))
        elif isinstance(event, str) and event in schemas:
            found = shape_problem(schemas[event])
            if found:
                problems.append(Problem(file, render_path(loc), found, SHAPE))
        slot = spec.get("slot") or slot_name(namespace, str(name))
        if isinstance(slot, str):
            other = slots.setdefault(slot, str(name))
            if other != str(name):
                problems.append(
                    Problem(
                        file,
                        render_path(("cdc", str(name), "slot")),
                        f"replication slot {slot!r}, also used by source {other!r}",
                        "a slot of its own per source",
                    )
                )
    return problems


def shape_problem(schema: LoadedSchema) -> str | None:
    """What is wrong with ``schema`` as a change event, or None."""
    parsed = schema.parsed
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return f"{schema.source} is not a record"
    fields = {str(f["name"]): f for f in parsed["fields"]}
    wrong = []
    for name, kinds in _REQUIRED.items():
        field = fields.get(name)
        if field is None:
            wrong.append(f"no field {name!r}")
            continue
        kind = _kind(field["type"], schema.named, nullable=name in ("before", "after"))
        if kind not in kinds:
            wrong.append(f"{name} is {kind}")
        elif name == "op" and kind == "enum":
            symbols = _resolve(field["type"], schema.named).get("symbols", [])
            if not set(OPS) <= set(symbols):
                wrong.append(f"op's enum lacks {sorted(set(OPS) - set(symbols))}")
    if "before" in fields and "after" in fields:
        before = _record(fields["before"]["type"], schema.named)
        after = _record(fields["after"]["type"], schema.named)
        if before is not None and after is not None and before.get("name") != after.get("name"):
            wrong.append("before and after are different records")
    for name, field in fields.items():
        if name in _REQUIRED or name in OPTIONAL or "default" in field:
            continue
        wrong.append(f"{name} is not filled by CDC and has no default")
    return f"{schema.source}: " + "; ".join(wrong) if wrong else None


def row_record(schema: LoadedSchema) -> dict[str, Any]:
    """The row record of a change-event schema that passed :func:`shape_problem`."""
    assert isinstance(schema.parsed, dict)
    for field in schema.parsed["fields"]:
        if field["name"] == "after":
            record = _record(field["type"], schema.named)
            assert record is not None
            return record
    raise ValueError(f"{schema.source} has no 'after' field")


def _kind(avro_type: Any, named: Mapping[str, Any], *, nullable: bool) -> str:
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if nullable and len(branches) == 1 and "null" in avro_type:
            return _kind(branches[0], named, nullable=False)
        return "a union" if not nullable else "not ['null', <record>]"
    if nullable:
        return "not nullable"
    resolved = _resolve(avro_type, named)
    return str(resolved.get("type", "?"))


def _resolve(avro_type: Any, named: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(avro_type, str):
        found = named.get(avro_type) or next(
            (v for k, v in named.items() if k.endswith("." + avro_type)), None
        )
        return dict(found) if isinstance(found, dict) else {"type": avro_type}
    return dict(avro_type) if isinstance(avro_type, dict) else {"type": "?"}


def _record(avro_type: Any, named: Mapping[str, Any]) -> dict[str, Any] | None:
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        return _record(branches[0], named) if len(branches) == 1 else None
    resolved = _resolve(avro_type, named)
    return resolved if resolved.get("type") == "record" else None
