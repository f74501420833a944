"""In-memory timers for the last moments of a delay, and the offsets they keep uncommitted.

Events due within the hold window wait in a :class:`DueQueue` rather than in a delay tier. Their
records are not committed while they wait: :class:`CommitTracker` gives the commit position of a
partition, which never passes an offset still held, so a crash re-reads (and re-holds) them
instead of losing them. Both are plain data structures; the agent owns the clock and the I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pipeline.agents.scheduling.errors import OffsetOrderError

__all__ = ["CommitTracker", "DueQueue"]

T = TypeVar("T")
P = TypeVar("P", bound=Hashable)


class DueQueue(Generic[T]):
    """Items ordered by due time, ties in push order; O(log n) push and pop."""

    def __init__(self) -> None:
        # The sequence number breaks ties, so items themselves are never compared.
        self._heap: list[tuple[int, int, T]] = []
        self._seq = itertools.count()

    def push(self, due_ms: int, item: T) -> None:
        heapq.heappush(self._heap, (due_ms, next(self._seq), item))

    def pop_due(self, now_ms: int) -> list[T]:
        """Remove and return every item due at or before ``now_ms``, earliest first."""
        out: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            out.append(heapq.heappop(heap)[2])
        return out

    def next_due_ms(self) -> int | None:
        """When the earliest item falls due (how long the agent may sleep), None when empty."""
        return self._heap[0][0] if self._heap else None

    def discard(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove the items ``predicate`` picks, e.g. those of revoked partitions; O(n).

        Rebalances are rare, and the new owner re-reads the uncommitted records anyway.
        """
        kept = [entry for entry in self._heap if not predicate(entry[2])]
        dropped = [entry[2] for entry in sorted(self._heap) if predicate(entry[2])]
        heapq.heapify(kept)
        self._heap = kept
        return dropped

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[tuple[int, T]]:
        """(due_ms, item) in due order, without removing them."""
        return ((due, item) for due, _, item in sorted(self._heap))


@dataclass
class _Partition:
    taken: deque[int] = field(default_factory=deque)  # ascending; done ones leave lazily
    open: set[int] = field(default_factory=set)
    next_offset: int = -1  # highest offset taken + 1; -1 before the first take
    committed: int | None = None  # the last position reported by mark_committed

    def trim(self) -> None:
        taken, still_open = self.taken, self.open
        while taken and taken[0] not in still_open:
            taken.popleft()

    def position(self) -> int:
        return self.taken[0] if self.taken else self.next_offset


class CommitTracker(Generic[P]):
    """Per partition: offsets taken and not yet completed, and the commit position they allow.

    Offsets must be taken in increasing order per partition, as a consumer yields them; gaps
    (compaction, transaction markers) are fine. The commit position is the lowest offset still
    open, or the highest taken + 1 when none is: every offset below it has completed. Taking,
    completing and reading the position are amortised O(1).
    """

    def __init__(self) -> None:
        self._parts: dict[P, _Partition] = {}

    def take(self, partition: P, offset: int) -> None:
        if offset < 0:
            raise OffsetOrderError(f"offset {offset} of {partition!r} is negative")
        part = self._parts.setdefault(partition, _Partition())
        if offset < part.next_offset:
            raise OffsetOrderError(
                f"offset {offset} of {partition!r} taken after {part.next_offset - 1}; "
                "forget() the partition before seeking back"
            )
        part.taken.append(offset)
        part.open.add(offset)
        part.next_offset = offset + 1

    def complete(self, partition: P, offset: int) -> bool:
        """Mark an offset done; False (and no change) if it was not open, e.g. after forget()."""
        part = self._parts.get(partition)
        if part is None or offset not in part.open:
            return False
        part.open.remove(offset)
        part.trim()  # keeps memory to the open span, not the whole history
        return True

    def committable(self, partition: P) -> int | None:
        """The Kafka commit position (next offset to read), None if nothing was taken."""
        part = self._parts.get(partition)
        if part is None or part.next_offset < 0:
            return None
        return part.position()

    def open_count(self, partition: P) -> int:
        part = self._parts.get(partition)
        return 0 if part is None else len(part.open)

    def mark_committed(self, partition: P, position: int) -> None:
        """Record a successful commit: :meth:`pending` skips the partition until it moves on."""
        part = self._parts.get(partition)
        if part is not None:
            part.committed = position

    def pending(self) -> dict[P, int]:
        """Commit positions that moved past the last :meth:`mark_committed`: one batch commit."""
        out: dict[P, int] = {}
        for partition, part in self._parts.items():
            if part.next_offset < 0:
                continue
            position = part.position()
            if part.committed is None or position > part.committed:
                out[partition] = position
        return out

    def forget(self, partition: P) -> None:
        """Drop a revoked (or re-seeked) partition; late completions for it are then ignored."""
        self._parts.pop(partition, None)

    def partitions(self) -> list[P]:
        return list(self._parts)
