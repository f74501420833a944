"""Errors of change data capture from PostgreSQL."""

from __future__ import annotations

from pipeline.errors import MSMError


class CdcError(MSMError):
    """CDC cannot go on as configured (wrong slot, missing table): fix it, do not retry."""


class SourceUnavailableError(CdcError):
    """The database did not answer, dropped the connection or holds the slot elsewhere.

    Reconnecting later may succeed; the slot keeps every change not acknowledged, so nothing
    is lost by retrying.
    """

    retriable = True


class DecodeError(CdcError):
    """Replication data (a pgoutput message or an LSN) could not be decoded.

    The message names the message type and the byte offset, because a garbled stream is only
    ever debugged from the log line.
    """
