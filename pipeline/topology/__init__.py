"""The topology: which events exist, who subscribes to them and how, validated once at load.

``load_topology(path)`` is the only way in; everything after it reads frozen models.
"""

from __future__ import annotations

from pipeline.topology.durations import Rate, format_duration, parse_duration, parse_rate
from pipeline.topology.errors import ApplyError, Problem, TopologyError
from pipeline.topology.loader import load_topology
from pipeline.topology.models import EventSpec, KafkaSettings, ScheduleSpec, Topology
from pipeline.topology.subscribers import CanarySpec, ConcurrencySpec, RetrySpec, SubscriberSpec

__all__ = [
    "ApplyError",
    "CanarySpec",
    "ConcurrencySpec",
    "EventSpec",
    "KafkaSettings",
    "Problem",
    "Rate",
    "RetrySpec",
    "ScheduleSpec",
    "SubscriberSpec",
    "Topology",
    "TopologyError",
    "format_duration",
    "load_topology",
    "parse_duration",
    "parse_rate",
]
