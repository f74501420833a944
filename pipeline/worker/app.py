"""The Faust app factory. Nothing is created at import time.

Each layer gets its own app, so its own consumer group (``<namespace>.<layer>``): workers
running any mix of layers share each layer's partitions, and no record is consumed twice
because two workers picked different ``--layers``.

Faust reads every one of its settings from same-named environment variables and lets them win
over the values given here, so a stray ``PRODUCER_ACKS=1`` or ``STORE`` in a shell would quietly
weaken MSM. The apps therefore see only variables spelled ``MSM_FAUST_<SETTING>`` (for example
``MSM_FAUST_BROKER_SESSION_TIMEOUT=30``): a deliberate, visible way to tune Faust.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from mode import CrashingSupervisor

from pipeline.broker.settings import default_cache_dir
from pipeline.errors import ConfigError
from pipeline.topology import Topology
from pipeline.topology.topics import max_record_bytes
from pipeline.worker.consumer import Fetch, Transport

log = logging.getLogger(__name__)

# Offsets are committed at most this often; only acknowledged (acked) events are committed.
COMMIT_INTERVAL_S = 0.5
# A worker that dies without leaving its groups holds its partitions this long (Kafka's classic
# default); Faust's own 60 s would stall a restarted worker's group for a minute.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_INTERVAL_S = 3.0
ENV_PREFIX = "MSM_FAUST_"
# librdkafka settings (topology kafka.client) the worker's aiokafka clients cannot honour yet;
# connecting without them would talk plaintext to a secured cluster, so they are refused.
_UNSUPPORTED_CLIENT = ("security.", "sasl.", "ssl.")


class _IdempotentProducer(AIOKafkaProducer):
    """Faust enables idempotence only inside transactions; MSM produces idempotently always."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _App(faust.App):
    """A Faust app with the idempotent producer and the eager consumer (the private factories
    are the only hooks)."""

    msm_fetch: Fetch = Fetch()

    def _new_producer(self) -> Any:
        return _IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def kafka_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def faust_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``MSM_FAUST_*`` variables without their prefix: the only environment Faust sees."""
    env = os.environ if environ is None else environ
    return {k[len(ENV_PREFIX) :]: v for k, v in env.items() if k.startswith(ENV_PREFIX)}


def create_app(
    topology: Topology, layer: str, *, fetch: Fetch | None = None, **overrides: Any
) -> Any:
    """A Faust app for one layer: raw bytes, manual acks, durable produce, no web server."""
    _check_client_settings(topology)
    # Faust makes a data directory per app, by default in the working directory. MSM keeps no
    # local state (store memory://, no tables), so every app shares one under the cache dir.
    datadir = default_cache_dir() / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "broker": kafka_url(topology.kafka.bootstrap_servers),
        "env": faust_env(),
        "datadir": str(datadir),
        "autodiscover": False,
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_disable_leader": True,
        "topic_allow_declare": False,  # topics are created by `msm topology apply`
        "broker_commit_every": 1000,
        "broker_commit_interval": COMMIT_INTERVAL_S,
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "producer_acks": -1,
        "producer_linger": 0.001,
        # What the topics take (plan_topics: the largest event's max_bytes plus headroom).
        "producer_max_request_size": max_record_bytes(topology.events.values()),
        "value_serializer": "raw",
        "key_serializer": "raw",
        "store": "memory://",
        # An agent someone forgot to wrap in fatal() still takes the worker down, not just itself.
        "agent_supervisor": CrashingSupervisor,
        # Held (unacked) events are redelivered after a restart; waiting for them would hang.
        "stream_wait_empty": False,
    }
    settings.update(overrides)
    app = _App(f"{topology.namespace}.{layer}", **settings)
    app.msm_fetch = fetch or Fetch()  # read by its consumer thread (pipeline.worker.consumer)
    return app


def _check_client_settings(topology: Topology) -> None:
    refused = sorted(k for k in topology.kafka.client if k.startswith(_UNSUPPORTED_CLIENT))
    if refused:
        raise ConfigError(
            f"kafka.client settings {', '.join(refused)} are not supported by `msm worker` yet "
            "(its Kafka clients would connect without them)"
        )
    ignored = sorted(topology.kafka.client)
    if ignored:
        log.warning("worker: kafka.client settings ignored by the worker: %s", ", ".join(ignored))
