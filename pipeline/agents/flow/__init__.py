"""Flow control's pure logic: rate limits, capacity and priority lanes.

No Kafka and no faust here, so the flow-control agent stays a thin loop of I/O around these and
each rule (a filter that errors does not match, the rate holds across workers, a subscriber in
trouble gets less work, no lane starves) is tested alone.
"""

from __future__ import annotations

from pipeline.agents.flow.capacity import (
    Aimd,
    AimdSettings,
    InFlight,
    Signal,
    share_in_flight,
    signal_for_http,
)
from pipeline.agents.flow.errors import FlowError
from pipeline.agents.flow.priority import LANES, Lane, LanePicker, strict_lane
from pipeline.agents.flow.ratelimit import TokenBucket, default_burst, share, share_burst

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
