"""Capacity gate: rate limits, in-flight caps, AIMD back-off and priority lanes.

No Kafka and no faust here, so the flow-control agent stays a thin loop of I/O around these and
each rule (a filter that errors does not match, the rate holds across workers, a subscriber in
trouble gets less work, no lane starves) is tested alone.
"""

from __future__ import annotations

from pipeline.gate.capacity import (
    Aimd,
    AimdSettings,
    InFlight,
    Signal,
    share_in_flight,
    signal_for_http,
)
from pipeline.gate.errors import FlowError
from pipeline.gate.priority import LANES, Lane, LanePicker, strict_lane
from pipeline.gate.ratelimit import TokenBucket, default_burst, share, share_burst

__all__ = [
    "LANES",
    "Aimd",
    "AimdSettings",
    "FlowError",
    "InFlight",
    "Lane",
    "LanePicker",
    "Signal",
    "TokenBucket",
    "default_burst",
    "share",
    "share_burst",
    "share_in_flight",
    "signal_for_http",
    "strict_lane",
]
