"""CDC source models: a database table whose changes become events (the scheduler reads them).

The connection string never sits in topology.yaml: ``dsn_env`` names the environment variable
that holds it, so the file can be committed and the secret stays in the deployment.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pipeline.topology.durations import Rate, RateField
from pipeline.topology.fields import EventName, Text, Token, invalid, invalid_text

__all__ = ["CdcLagSpec", "CdcSnapshotSpec", "CdcSourceSpec", "slot_name"]

_CONFIG = ConfigDict(frozen=True, extra="forbid")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
_SLOT = re.compile(r"[a-z0-9_]{1,63}")
_SECOND = timedelta(seconds=1)


def _env(value: str) -> str:
    if not _ENV.fullmatch(value):
        raise invalid(value, "an environment variable name like MSM_CDC_USERS_DSN")
    return value


def _table(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise invalid(value, "a table name, 'table' or 'schema.table' (unquoted identifiers)")
    return value


def _slot(value: str) -> str:
    if not _SLOT.fullmatch(value):
        raise invalid(value, "a replication slot name: 1-63 of a-z, 0-9 and _")
    return value


EnvName = Annotated[str, AfterValidator(_env)]
TableName = Annotated[str, AfterValidator(_table)]
SlotName = Annotated[str, AfterValidator(_slot)]


class CdcLagSpec(BaseModel):
    """How far behind the events' subscribers may fall before the source is read more slowly.

    Below ``slow`` the source is read at ``rate_limit``; between ``slow`` and ``pause`` the rate
    falls linearly towards nothing; at ``pause`` reading stops until the backlog is below ``slow``.
    """

    model_config = _CONFIG

    slow: int = Field(default=1_000, ge=0)
    pause: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CdcLagSpec:
        if self.slow >= self.pause:
            raise invalid(self.slow, f"below pause ({self.pause})", "slow")
        return self


class CdcSnapshotSpec(BaseModel):
    """``initial``: a source starting with no replication slot first publishes every existing row
    (op ``r``); rows are read ``chunk_rows`` at a time, in key order, and the position is kept so
    a restart resumes. ``msm cdc snapshot`` starts one later, for one subscriber or all."""

    model_config = _CONFIG

    initial: bool = Field(default=False, strict=True)
    chunk_rows: int = Field(default=1_000, ge=1, le=100_000)


class CdcSourceSpec(BaseModel):
    """One PostgreSQL table captured through logical replication (pgoutput) into ``event``."""

    model_config = _CONFIG

    name: Token
    dsn_env: EnvName
    table: TableName
    event: EventName
    key: Text  # the table's key column: snapshot order, and the events' Kafka key
    slot: SlotName | None = None  # default: msm_<namespace>_<name>
    publication: SlotName | None = None  # default: the slot's name
    rate_limit: RateField = Field(default_factory=lambda: Rate(count=5_000, per=_SECOND))
    lag: CdcLagSpec = CdcLagSpec()
    snapshot: CdcSnapshotSpec = CdcSnapshotSpec()

    @model_validator(mode="after")
    def _key_is_a_column(self) -> CdcSourceSpec:
        if not _ENV.fullmatch(self.key):
            raise invalid_text(repr(self.key), "a column name (unquoted identifier)", "key")
        return self

    def slot_for(self, namespace: str) -> str:
        return self.slot or slot_name(namespace, self.name)

    def publication_for(self, namespace: str) -> str:
        return self.publication or self.slot_for(namespace)


def slot_name(namespace: str, source: str) -> str:
    """PostgreSQL's slot names allow only ``[a-z0-9_]``; anything else becomes ``_``."""
    raw = f"msm_{namespace}_{source}".lower()
    return re.sub(r"[^a-z0-9_]", "_", raw)[:63]
