"""Tiny example handlers for the example topology.yaml.

A handler is ``async def handler(payload, meta)`` (a plain ``def`` runs in a thread pool):
``payload`` is the decoded event (a dict of the event's current schema), ``meta`` the task's
:class:`~pipeline.TaskMeta` (task and event id, type, attempt, ...). Raising fails the attempt and
the subscriber's retry policy decides what happens next; ``raise Retry(delay=30)`` asks for a
later attempt, ``raise DeadLetter("why")`` gives up at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline import TaskMeta

Payload = Mapping[str, object]


async def make_thumbnail(payload: Payload, meta: TaskMeta) -> None:
    if not str(payload.get("mime_type", "")).startswith("image/"):
        raise ValueError(f"not an image: {payload.get('mime_type')!r}")


async def send_receipt(payload: Payload, meta: TaskMeta) -> None:
    if not payload.get("customer_email"):
        raise ValueError("payment has no customer_email")


async def send_receipt_v2(payload: Payload, meta: TaskMeta) -> None:
    await send_receipt(payload, meta)


async def purge_account(payload: Payload, meta: TaskMeta) -> None:
    if not payload.get("user_id"):
        raise ValueError("user.deleted without user_id")


async def cleanup(payload: Payload, meta: TaskMeta) -> None:
    return None
