"""Decoded pgoutput messages -> change events: payload shape, keys, ids, TOAST, other tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.avro.records import to_avro
from pipeline.avro.schemas import load_schema
from pipeline.cdc.changes import Change, ChangeBuilder
from pipeline.cdc.errors import CdcError
from pipeline.cdc.pgoutput import UNCHANGED, Begin, Column, Delete, Insert, Relation, Update
from tests.fixtures.topologies import SCHEMAS

SCHEMA = load_schema(SCHEMAS / "item_changed.avsc")
AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
COLUMNS = (
    Column("id", 20, -1, True),
    Column("name", 25, -1, False),
    Column("qty", 23, -1, False),
    Column("price", 1700, -1, False),
    Column("updated_at", 1184, -1, False),
)
ITEMS = Relation(16_400, "inventory", "items", "f", COLUMNS)


def one(changes: list[Change]) -> Change | None:
    assert len(changes) <= 1
    return changes[0] if changes else None


def builder() -> ChangeBuilder:
    b = ChangeBuilder("items", "inventory.items", "id", SCHEMA)
    b.relation(ITEMS)
    b.relation(Relation(16_401, "public", "other", "d", COLUMNS))  # not ours: ignored
    b.begin(Begin(final_lsn=0x16B3748, commit_time=AT, xid=7))
    return b


ROW = ("7", "bolt", "3", "1.50", "2025-01-02 03:04:05+00")


def test_an_insert_becomes_a_valid_event_with_a_stable_id() -> None:
    change = one(builder().changes(Insert(16_400, ROW)))
    assert change is not None
    assert change.event_id == "cdc:items:0/16B3748:1"
    assert change.key == b"7"
    assert change.payload["op"] == "c"
    assert change.payload["before"] is None
    assert change.payload["lsn"] == "0/16B3748"
    assert change.payload["commit_time"] == AT
    assert change.payload["table"] == "inventory.items"
    assert change.payload["source"] == "items"
    record = to_avro(SCHEMA, change.payload)  # what the encoder will validate
    after = record["after"]
    assert isinstance(after, dict)
    assert after["qty"] == 3
    assert after["price"] == "1.50"


def test_updates_keep_unchanged_toast_values_from_the_old_row_and_count_up() -> None:
    b = builder()
    old = ("7", "bolt", "3", "1.50", None)
    first = one(b.changes(Update(16_400, old, False, ("7", UNCHANGED, "4", "1.50", None))))
    assert first is not None
    assert first.op == "u"
    assert first.payload["after"]["name"] == "bolt"  # type: ignore[index]
    assert first.payload["before"]["qty"] == 3  # type: ignore[index]
    second = one(b.changes(Delete(16_400, old, False)))
    assert second is not None
    assert second.op == "d"
    assert second.payload["after"] is None
    assert second.event_id == "cdc:items:0/16B3748:2"
    assert second.key == b"7"


def test_a_key_change_is_a_delete_under_the_old_key_and_an_insert_under_the_new() -> None:
    b = builder()
    message = Update(16_400, ("7", "a", None, None, None), True, ("8", "a", None, None, None))
    assert b.keys_of(message) == {"7", "8"}
    gone, came = b.changes(message)
    assert (gone.op, gone.key, gone.payload["after"]) == ("d", b"7", None)
    assert (came.op, came.key, came.payload["before"]) == ("c", b"8", None)
    assert came.event_id == "cdc:items:0/16B3748:2"


def test_changes_of_other_tables_are_ignored() -> None:
    assert builder().changes(Insert(16_401, ROW)) == []


def test_a_table_without_the_row_records_required_column_is_refused() -> None:
    b = ChangeBuilder("items", "inventory.items", "id", SCHEMA)
    with pytest.raises(CdcError, match=r"needs \['id'\]"):
        b.relation(Relation(16_400, "inventory", "items", "f", COLUMNS[1:]))


def test_a_snapshot_row_gets_op_r_and_an_id_from_its_job_and_key() -> None:
    b = builder()
    change = b.snapshot_row("job1", list(ROW), 0x16B3748, AT)
    assert change.event_id == "cdc:items:snapshot:job1:7"
    assert change.op == "r"
    assert change.key == b"7"
    to_avro(SCHEMA, change.payload)
