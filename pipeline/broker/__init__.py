"""The local Kafka broker behind ``msm broker``: jars from Maven Central, one KRaft node.

Nothing starts at import; every function takes :class:`BrokerSettings` (defaults: port 9092,
state under ``~/.cache/msm/broker-9092``).
"""

from __future__ import annotations

from pipeline.broker.errors import BrokerError, BrokerStartTimeoutError
from pipeline.broker.jars import classpath, ensure_jars
from pipeline.broker.logs import follow, tail
from pipeline.broker.probe import is_answering
from pipeline.broker.process import (
    StartResult,
    StatusResult,
    StopResult,
    log_excerpt,
    start,
    status,
    stop,
)
from pipeline.broker.settings import KAFKA_VERSION, BrokerSettings

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "BrokerSettings",
    "BrokerStartTimeoutError",
    "StartResult",
    "StatusResult",
    "StopResult",
    "classpath",
    "ensure_jars",
    "follow",
    "is_answering",
    "log_excerpt",
    "start",
    "status",
    "stop",
    "tail",
]
