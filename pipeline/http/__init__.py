"""The worker's HTTP server: event ingress (``POST /v1/events``), ``/healthz`` and ``/readyz``.

HTTP ingress is a publisher like any other: validated against the event's Avro schema, sent with
acks=all, answered 202 only after Kafka acknowledged. See :mod:`pipeline.http.ingress`.
"""

from __future__ import annotations

from pipeline.http.auth import TokenStore, load_tokens
from pipeline.http.errors import ApiError, HttpIngressError, TokenConfigError
from pipeline.http.health import KafkaReadiness, Readiness, ReadinessCheck
from pipeline.http.server import INGRESS, HttpServer, build_app, start_server
from pipeline.http.settings import HttpSettings

__all__ = [
    "INGRESS",
    "ApiError",
    "HttpIngressError",
    "HttpServer",
    "HttpSettings",
    "KafkaReadiness",
    "Readiness",
    "ReadinessCheck",
    "TokenConfigError",
    "TokenStore",
    "build_app",
    "load_tokens",
    "start_server",
]
