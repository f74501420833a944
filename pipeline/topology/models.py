"""The topology as frozen models: what topology.yaml declares, validated once at load time.

Every later layer reads these objects and never the YAML, so defaults live here and nowhere else.
Names of events, subscribers and schedules come from their keys in the YAML mappings.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.topology.cdc import CdcSourceSpec
from pipeline.topology.durations import PositiveDuration, format_duration, parse_duration
from pipeline.topology.fields import (
    EventName,
    Namespace,
    SchemaFile,
    Text,
    Token,
    invalid,
    invalid_text,
)
from pipeline.topology.subscribers import SubscriberSpec

__all__ = [
    "CdcSourceSpec",
    "EventSpec",
    "KafkaSettings",
    "ScheduleSpec",
    "SubscriberSpec",
    "Topology",
]

MiB = 1024 * 1024
DEFAULT_DELAY_TIERS = tuple(
    parse_duration(t) for t in ("1s", "5s", "30s", "2m", "10m", "1h", "6h", "1d")
)
_CONFIG = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(BaseModel):
    """Where the cluster is and how durable MSM's topics are; ``client``: extra librdkafka keys."""

    model_config = _CONFIG

    bootstrap_servers: Text = "localhost:9092"
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    client: dict[str, str] = Field(default_factory=dict, repr=False)  # may hold SASL secrets

    @field_validator("client", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: object) -> object:
        # librdkafka takes every setting as a string; YAML gives ints and bools for some.
        if isinstance(value, dict):
            return {
                k: (str(v).lower() if isinstance(v, bool) else str(v))
                if isinstance(v, (bool, int, float))
                else v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _isr_fits(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise invalid(
                self.min_insync_replicas,
                f"at most replication_factor ({self.replication_factor})",
                "min_insync_replicas",
            )
        return self


class EventSpec(BaseModel):
    """One event type: its Avro schema (current and older versions) and its ingress topic."""

    model_config = _CONFIG

    name: EventName
    schema_path: SchemaFile = Field(alias="schema")
    previous_schemas: tuple[SchemaFile, ...] = ()  # oldest first
    partitions: int = Field(default=6, ge=1, le=10_000)
    key: Text | None = None  # top-level payload field used as the Kafka key
    retention: PositiveDuration | None = None  # of the ingress topic; None: 7 days
    max_bytes: int = Field(default=MiB, ge=1, le=64 * MiB)

    @field_validator("schema_path", "previous_schemas", mode="after")
    @classmethod
    def _absolute(cls, value: Path | tuple[Path, ...], info: ValidationInfo) -> object:
        base = Path((info.context or {}).get("base_dir", "."))
        if isinstance(value, Path):
            return (base / value).absolute()
        return tuple((base / p).absolute() for p in value)


class ScheduleSpec(BaseModel):
    """A periodic event: ``payload`` is published as ``event`` at every ``cron`` tick."""

    model_config = _CONFIG

    name: Token
    event: EventName
    cron: Text
    timezone: Text = "UTC"
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    missed: Literal["skip", "fire_once"] = "skip"  # ticks missed while MSM was down

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise invalid(value, "a cron expression like '0 3 * * *' or '@daily'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(value, "an IANA time zone name like 'UTC' or 'Europe/Berlin'") from None
        return value


class Topology(BaseModel):
    """The whole topology; build it with :func:`pipeline.topology.load_topology`."""

    model_config = _CONFIG

    namespace: Namespace = "msm"
    kafka: KafkaSettings = KafkaSettings()
    delay_tiers: tuple[PositiveDuration, ...] = Field(default=DEFAULT_DELAY_TIERS, min_length=1)
    events: dict[EventName, EventSpec] = Field(min_length=1)
    subscribers: dict[Token, SubscriberSpec] = Field(default_factory=dict)
    schedules: dict[Token, ScheduleSpec] = Field(default_factory=dict)
    cdc: dict[Token, CdcSourceSpec] = Field(default_factory=dict)
    source_path: Path = Field(default=Path("topology.yaml"), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        named = dict(data)
        for section in ("events", "subscribers", "schedules", "cdc"):
            entries = named.get(section)
            if isinstance(entries, dict):
                named[section] = {
                    key: {**spec, "name": key} if isinstance(spec, dict) else spec
                    for key, spec in entries.items()
                }
        return named

    @field_validator("delay_tiers", mode="after")
    @classmethod
    def _tiers_sorted(cls, value: tuple[timedelta, ...]) -> tuple[timedelta, ...]:
        for i, tier in enumerate(value):
            if tier in value[:i]:
                raise invalid_text(
                    f"{format_duration(tier)} listed twice", "each delay tier once", f"[{i}]"
                )
        return tuple(sorted(value))
