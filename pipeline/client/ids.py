"""Event ids: UUIDv7 (RFC 9562), so ids sort by creation time in logs, topics and dead letters.

uuid6.uuid7 keeps ids ordered by pushing the timestamp one millisecond ahead per id within a
millisecond, so a fast publisher's ids drift into the future. This one keeps the real
millisecond and counts up in the 74 random bits instead (RFC 9562, 6.2 method 3), under a lock,
so ids from one process are strictly increasing even from several threads.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from datetime import UTC, datetime

_RANDOM_BITS = 74
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def uuid7() -> uuid.UUID:
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            # Seed below half the range, leaving room to count up within the millisecond.
            _last_ms, _last_random = now_ms, secrets.randbits(_RANDOM_BITS - 1)
        else:  # same millisecond, or the clock stepped back: stay monotonic
            _last_random += 1
            if _last_random >> _RANDOM_BITS:
                _last_ms, _last_random = _last_ms + 1, secrets.randbits(_RANDOM_BITS - 1)
        ms, rand = _last_ms, _last_random
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_event_id() -> str:
    """A fresh event id in canonical text form; text order is creation order."""
    return str(uuid7())


def event_id_time(event_id: str) -> datetime | None:
    """When a UUIDv7 event id was made; None for ids that are not UUIDv7 (caller supplied)."""
    try:
        parsed = uuid.UUID(event_id)
    except ValueError:
        return None
    if parsed.version != 7:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, tz=UTC)
