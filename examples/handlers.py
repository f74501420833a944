"""Tiny example handlers for the example topology.yaml.

A handler is ``async def handler(payload, meta)`` (a plain ``def`` runs in a thread pool):
``payload`` is the decoded event (a dict of the event's current schema), ``meta`` the task's
:class:`~pipeline.TaskMeta` (task and event id, type, attempt, ...). Raising fails the attempt and
the subscriber's retry policy decides what happens next; ``raise Retry(delay=30)`` asks for a
later attempt, ``raise DeadLetter("why")`` gives up at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pipeline import TaskMeta

Payload = Mapping[str, object]
log = logging.getLogger(__name__)


async def make_thumbnail(payload: Payload, meta: TaskMeta) -> None:
    if not str(payload.get("mime_type", "")).startswith("image/"):
        raise ValueError(f"not an image: {payload.get('mime_type')!r}")
    log.info("thumbnailer: thumbnail of %s (task %s)", payload.get("path"), meta.task_id)


async def send_receipt(payload: Payload, meta: TaskMeta) -> None:
    if not payload.get("customer_email"):
        raise ValueError("payment has no customer_email")
    log.info("receipt-mailer: receipt for order %s sent", payload.get("order_id"))


async def send_receipt_v2(payload: Payload, meta: TaskMeta) -> None:
    log.info("receipt-mailer: v2 (canary) takes order %s", payload.get("order_id"))
    await send_receipt(payload, meta)


async def purge_account(payload: Payload, meta: TaskMeta) -> None:
    if not payload.get("user_id"):
        raise ValueError("user.deleted without user_id")
    log.info("account-purger: purged account %s", payload.get("user_id"))


async def cleanup(payload: Payload, meta: TaskMeta) -> None:
    log.info("janitor: cleanup of %s (attempt %d)", payload.get("scope"), meta.attempt)
