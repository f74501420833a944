"""The root of MSM's exceptions.

Every error MSM raises derives from :class:`MSMError`. Each carries ``retriable`` so callers
decide whether to try again without isinstance chains (the aiokafka habit). Subpackages keep
their own small ``errors`` modules deriving from these.
"""

from __future__ import annotations


class MSMError(Exception):
    """Base of every MSM error; ``retriable`` says whether trying again may succeed."""

    retriable: bool = False


class ConfigError(MSMError):
    """The user's configuration (topology, flags, environment) is wrong: fix it, do not retry."""


class KafkaUnavailableError(MSMError):
    """Kafka did not answer or acknowledge in time; the same call may succeed later."""

    retriable = True
