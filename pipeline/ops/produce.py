"""One record produced and acknowledged (acks=all): how operator commands write state topics."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from pipeline.client.encoder import producer_config
from pipeline.errors import KafkaUnavailableError
from pipeline.ops.errors import OpsError
from pipeline.topology import Topology


def produce_acked(
    topology: Topology, topic: str, key: bytes, value: bytes, timeout_s: float = 30.0
) -> None:
    """Produce and wait until Kafka acknowledged the record, so readers can already fetch it."""
    producer = Producer(producer_config(topology))
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _m: Message) -> None:
        if err is not None:
            errors.append(err)

    producer.produce(topic, value, key, on_delivery=delivered)
    if producer.flush(timeout_s) or errors:
        what = errors[0].str() if errors else f"no acknowledgement in {timeout_s:g} s"
        if errors and not errors[0].retriable():
            raise OpsError(f"writing {topic}: {what}")
        raise KafkaUnavailableError(f"writing {topic}: Kafka is unavailable ({what})")
