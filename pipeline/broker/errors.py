"""Errors of the local broker commands."""

from __future__ import annotations

from pipeline.errors import MSMError


class BrokerError(MSMError):
    """The local broker could not be resolved, configured, started or stopped.

    The message says what to do (what to install, which port is taken, the broker log's tail),
    because the user usually reads it in a terminal with nothing else to go on.
    """


class BrokerStartTimeoutError(BrokerError):
    """The broker did not answer in time; a slow machine may do better with a longer timeout."""

    retriable = True
