"""Open a peer worker's ledger at boot, before any handler thread runs.

``ledger.writer()`` makes the process's writer on first use without a lock: Dramatiq's handler
threads racing to their first record could each make one, and the lines buffered in the loser
would never reach the file (seen: ~2 % of runs missing). The workers' boot hooks call this
once per worker process (each Celery pool child, each Dramatiq process) before work starts.
"""

from __future__ import annotations

from loadtest.ledger import writer


def open_ledger() -> None:
    writer()
