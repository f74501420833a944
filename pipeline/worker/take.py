"""Batches of whatever has arrived, unacked: Faust's ``Stream.noack_take`` without its clock.

``noack_take(max_, within)`` waits for a full buffer *or* ``within`` seconds, in a loop that
never stops ticking: every ``within`` (5-10 ms in MSM's agents) it wakes, builds mode's
``wait_first`` (three tasks, an ``asyncio.wait`` with a timer) and, if something arrived,
yields it. So an event waits for the next tick (``within`` / 2 on average, per hop), and each
of a worker's dozen agents wakes 100-200 times a second whether or not anything came: that
polling was a fifth of an idle worker's CPU and most of the per-hop latency at low rates.

:func:`take_ready` waits for the *first* event with no timeout and then hands over everything
that has arrived: the stream's passive drainer takes one record per turn of the event loop, so
the agent lets it run until the stream's queue is empty (or ``max_`` are buffered). The buffer
keeps filling while the agent works on a batch, so under load the next batch is ready when the
agent comes back. As with ``noack_take``, the events are yielded unacked (the agent acks them
once their work is done) and never more than ``max_`` at a time (faust-streaming 0.15.x
``Stream`` internals: ``add_processor``, ``_enable_passive``, ``current_event``,
``enable_acks``, ``_processors``).

Measured through all five layers, two workers, 250 events/s: worker CPU 113-118 % -> 92 %
(of 200 %), per-hop and end-to-end latency unchanged within this machine's noise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


async def take_ready(stream: Any, max_: int) -> AsyncIterator[list[Any]]:
    """Yield lists of 1..``max_`` unacked events as soon as any has arrived."""
    buffer: list[Any] = []
    arrived = asyncio.Event()  # the buffer holds something
    room = asyncio.Event()  # the buffer is below max_
    room.set()
    queue = getattr(stream.channel, "queue", None)  # what the drainer has yet to take

    async def add_to_buffer(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ready: the stream has no current event")
        buffer.append(event)
        arrived.set()
        if len(buffer) >= max_:
            room.clear()
            await stream.wait(room)  # strictly no more than max_ per batch
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked by the agent, once the work is done
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if not buffer:
                arrived.clear()
                if await stream.wait_for_stopped(arrived):
                    break
            # The drainer takes one record per turn of the loop: let it take what has arrived.
            for _ in range(max_):
                if len(buffer) >= max_ or queue is None or queue.empty():
                    break
                await asyncio.sleep(0)
            batch = buffer[:max_]
            del buffer[: len(batch)]
            if len(buffer) < max_:
                room.set()
            yield batch
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
