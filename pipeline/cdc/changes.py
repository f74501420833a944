"""Decoded pgoutput messages of one table -> change events (payload, key and a stable id).

Ids are derived from the change's place in the log, ``cdc:<source>:<commit lsn>:<n>``, and a
snapshot row's from its job and key, so a change published twice (a restart inside the
at-least-once window) is the same event twice and downstream dedup collapses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.avro.schemas import LoadedSchema
from pipeline.cdc.errors import CdcError
from pipeline.cdc.pgoutput import Begin, Delete, Insert, Relation, Tuple, Update, format_lsn
from pipeline.cdc.values import RowShape
from pipeline.topology.cdc_checks import row_record


@dataclass(frozen=True, slots=True)
class Change:
    event_id: str
    key: bytes
    op: str  # c, u, d or r
    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class PayloadShape:
    """How this event's schema spells the fields CDC fills (see cdc_checks)."""

    lsn_is_text: bool
    commit_time_kind: str  # "instant" (timestamp logical type), "millis" (plain long), "text"
    optional: frozenset[str]  # of source, table, xid: the ones the schema declares

    @classmethod
    def of(cls, schema: LoadedSchema) -> PayloadShape:
        assert isinstance(schema.parsed, dict)
        fields = {str(f["name"]): f["type"] for f in schema.parsed["fields"]}
        commit = fields["commit_time"]
        if isinstance(commit, dict) and str(commit.get("logicalType", "")).startswith("timestamp"):
            kind = "instant"
        else:
            kind = "text" if commit == "string" else "millis"
        return cls(
            lsn_is_text=fields["lsn"] == "string",
            commit_time_kind=kind,
            optional=frozenset(n for n in ("source", "table", "xid") if n in fields),
        )


def split_table(table: str) -> tuple[str, str]:
    """``users`` -> (public, users); ``app.users`` -> (app, users)."""
    schema, _, name = table.rpartition(".")
    return schema or "public", name


class ChangeBuilder:
    """Turns one source's decoded messages into :class:`Change`; other tables are ignored."""

    def __init__(self, source: str, table: str, key_column: str, schema: LoadedSchema) -> None:
        self.source = source
        self.table = split_table(table)
        self.key_column = key_column
        self._shape = PayloadShape.of(schema)
        self._rows = RowShape(row_record(schema)["fields"])
        self._relation: Relation | None = None
        self._columns: list[tuple[str, int]] = []
        self._begin: Begin | None = None
        self._seq = 0

    @property
    def columns(self) -> list[tuple[str, int]]:
        return list(self._columns)

    @property
    def table_name(self) -> str:
        return ".".join(self.table)

    def relation(self, relation: Relation) -> None:
        """Sent before a table's first change in a session and again after its columns change."""
        if (relation.namespace, relation.name) != self.table:
            return
        columns = [c.name for c in relation.columns]
        missing = self._rows.missing(columns)
        if missing:
            raise CdcError(
                f"cdc source {self.source!r}: the event's row record needs {missing}, which "
                f"{self.table_name} does not have (columns: {', '.join(columns)})"
            )
        if self.key_column not in columns:
            raise CdcError(
                f"cdc source {self.source!r}: key column {self.key_column!r} is not a column "
                f"of {self.table_name} (columns: {', '.join(columns)})"
            )
        self._relation = relation
        self._columns = [(c.name, c.type_oid) for c in relation.columns]

    def begin(self, begin: Begin) -> None:
        self._begin = begin
        self._seq = 0

    def changes(self, message: Insert | Update | Delete) -> list[Change]:
        """The change events of one message: none for another table, two for an update that
        moves a row to another key (a delete under the old key, an insert under the new one,
        so each key's events alone tell its row's state, as in Debezium)."""
        relation = self._relation
        if relation is None or message.relation_oid != relation.oid:
            return []
        begin = self._begin
        if begin is None:
            raise CdcError(f"cdc source {self.source!r}: a change outside a transaction")
        name = self.table_name
        if isinstance(message, Insert):
            return [self._change(begin, "c", None, self._row(message.new), self._key(message))]
        if isinstance(message, Delete):
            return [self._change(begin, "d", self._row(message.old), None, self._key(message))]
        after = self._row(message.new)
        before = None
        if message.old is not None:
            before = self._rows.row(name, self._columns, message.old)
            for field, value in before.items():  # unchanged TOAST: the old value stands
                after.setdefault(field, value)
        new_key = self._key(message)
        old_key = self._old_key(message)
        if old_key is not None and old_key != new_key:
            return [
                self._change(begin, "d", before, None, old_key),
                self._change(begin, "c", None, after, new_key),
            ]
        return [self._change(begin, "u", before, after, new_key)]

    def _row(self, values: Tuple) -> dict[str, object]:
        return self._rows.row(self.table_name, self._columns, values)

    def _change(
        self,
        begin: Begin,
        op: str,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
        key: bytes,
    ) -> Change:
        self._seq += 1
        event_id = f"cdc:{self.source}:{format_lsn(begin.final_lsn)}:{self._seq}"
        payload = self._payload(op, before, after, begin.final_lsn, begin.commit_time, begin.xid)
        return Change(event_id, key, op, payload)

    def _old_key(self, message: Update) -> bytes | None:
        """The old key when the old row (or its key) came along, else None (key unchanged)."""
        if message.old is None:
            return None
        value = message.old[self._key_index()]
        return value.encode() if isinstance(value, str) else None

    def snapshot_row(self, job: str, values: list[str | None], lsn: int, at: datetime) -> Change:
        """A row read by a snapshot, in this table's column order (see :meth:`columns`)."""
        after = self._rows.row(self.table_name, self._columns, values)
        key_text = values[self._key_index()]
        key = (key_text or "").encode()
        payload = self._payload("r", None, after, lsn, at, None)
        return Change(f"cdc:{self.source}:snapshot:{job}:{key_text}", key, "r", payload)

    def use_columns(self, columns: list[tuple[str, int]]) -> None:
        """The snapshot's columns when no Relation message was seen yet (no change streamed)."""
        missing = self._rows.missing([c for c, _ in columns])
        if missing:
            raise CdcError(
                f"cdc source {self.source!r}: the event's row record needs {missing}, which "
                f"{self.table_name} does not have"
            )
        if not self._columns:
            self._columns = list(columns)

    def keys_of(self, message: Insert | Update | Delete) -> set[str]:
        """Every key a change touches (an update may move a row from one key to another)."""
        relation = self._relation
        if relation is None or message.relation_oid != relation.oid:
            return set()
        index = self._key_index()
        found: set[str] = set()
        for values in (getattr(message, "new", None), getattr(message, "old", None)):
            if values is not None and isinstance(values[index], str):
                found.add(values[index])
        return found

    def _key(self, message: Insert | Update | Delete) -> bytes:
        """The new key, else the old one (a delete): the Kafka key of the change event."""
        index = self._key_index()
        for values in (getattr(message, "new", None), getattr(message, "old", None)):
            value = values[index] if values is not None else None
            if isinstance(value, str):
                return value.encode()
        return b""

    def _key_index(self) -> int:
        return [c for c, _ in self._columns].index(self.key_column)

    def _payload(
        self,
        op: str,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
        lsn: int,
        at: datetime,
        xid: int | None,
    ) -> dict[str, object]:
        shape = self._shape
        payload: dict[str, object] = {
            "op": op,
            "before": before,
            "after": after,
            "lsn": format_lsn(lsn) if shape.lsn_is_text else lsn,
            "commit_time": _commit_time(at, shape.commit_time_kind),
        }
        if "source" in shape.optional:
            payload["source"] = self.source
        if "table" in shape.optional:
            payload["table"] = self.table_name
        if "xid" in shape.optional and xid is not None:
            payload["xid"] = xid
        return payload


def _commit_time(at: datetime, kind: str) -> object:
    if kind == "instant":
        return at
    if kind == "text":
        return at.isoformat()
    return int(at.timestamp() * 1000)
