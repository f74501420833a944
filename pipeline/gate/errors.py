"""Errors of flow control's pure logic (rate limits, capacity, priority lanes)."""

from __future__ import annotations

from pipeline.errors import MSMError


class FlowError(MSMError):
    """Flow control's logic was called against its contract (a caller bug, not bad data)."""
