"""Publishing events to MSM from Python: ``Publisher`` (blocking) and ``AsyncPublisher``.

    with Publisher.from_topology_file("topology.yaml") as publisher:
        event_id = publisher.publish("file.uploaded", {"file_id": "f1", "size": 12})

Payloads are validated against the event's current Avro schema in the caller's process (a
RecordError names every bad field) and sent as Avro single-object encoding to the event's
ingress topic; a returned id means Kafka acknowledged the event (acks=all, idempotent).
"""

from __future__ import annotations

from pipeline.avro.records import FieldError, RecordError
from pipeline.client.async_publisher import AsyncPublisher
from pipeline.client.errors import (
    ClientError,
    PublishArgumentError,
    PublishError,
    UnknownEventError,
)
from pipeline.client.ids import new_event_id
from pipeline.client.publisher import Publisher

__all__ = [
    "AsyncPublisher",
    "ClientError",
    "FieldError",
    "PublishArgumentError",
    "PublishError",
    "Publisher",
    "RecordError",
    "UnknownEventError",
    "new_event_id",
]
