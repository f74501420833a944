"""Settings of the worker's HTTP server (ingress, health, and whatever routes others add)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


class HttpSettings(BaseModel):
    """Where to listen and how long a request may wait for Kafka.

    ``kafka_timeout_s`` becomes the publisher's ``delivery.timeout.ms`` (when the server makes its
    own publisher): an event Kafka has not acknowledged by then gets 503 with ``Retry-After``
    rather than holding the client's connection open for librdkafka's default of minutes.
    ``publisher_config`` holds extra librdkafka settings for that publisher.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (tests)
    max_request_bytes: int = Field(default=8 * MiB, ge=1024)
    body_timeout_s: float = Field(default=30.0, gt=0)  # a body not in by then: 408
    kafka_timeout_s: float = Field(default=10.0, gt=0)
    retry_after_s: int = Field(default=5, ge=1)
    ready_timeout_s: float = Field(default=2.0, gt=0)
    shutdown_timeout_s: float = Field(default=10.0, ge=0)
    publisher_config: dict[str, str | int | float | bool] = Field(default_factory=dict)

    def producer_overrides(self) -> dict[str, object]:
        return {"delivery.timeout.ms": int(self.kafka_timeout_s * 1000), **self.publisher_config}
