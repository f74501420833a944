"""Errors of the operator tools."""

from __future__ import annotations

from pipeline.errors import MSMError


class OpsError(MSMError):
    """Kafka refused or failed an operator query (other than being unreachable)."""
