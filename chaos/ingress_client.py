"""A well-behaved HTTP publisher: one event at a time, each resent (same id) until accepted.

It is how a user's service should talk to the ingress: a 503 says Kafka has not acknowledged,
so the event is resent after ``Retry-After`` with the same id (the dedup window recognises a
resend that did get through). One event at a time per client keeps per-key order. Every
answer is logged with its time, so a scenario can say what the ingress answered while Kafka was
down: 202 is only allowed for events that then ran; 503 is the honest "not now".
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from chaos.checker import Published
from chaos.generator import EVENT_TYPE

RESEND_CAP_S = 2.0  # the scenario's clients wait at most this long, whatever Retry-After says


@dataclass(frozen=True)
class Answer:
    at_ns: int
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    event_id: str


@dataclass
class IngressClient:
    """POSTs ``chaos.event``s to the ingress at ``host:port`` from a thread, up to ``rate``/s."""

    host: str
    port: int
    rate: float
    keys: int = 4
    prefix: str = "h"
    timeout_s: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    accepted: list[Published] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-ingress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops after the event in hand is accepted or the client gives up on it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s * 2)

    def statuses(self, since_ns: int = 0, until_ns: int = 2**63) -> Counter[int]:
        return Counter(a.status for a in self.answers if since_ns <= a.at_ns <= until_ns)

    def _run(self) -> None:
        seqs = [0] * self.keys
        n = 0
        while not self._stop.is_set():
            k = n % self.keys
            event_id, key = f"{self.prefix}-{n}", f"{self.prefix}{k}"
            if self._deliver(event_id, key, seqs[k]):
                seqs[k] += 1
                n += 1
            self._stop.wait(1 / self.rate)

    def _deliver(self, event_id: str, key: str, seq: int) -> bool:
        """Send until a 202 (True); False when stopped before one (the event is not owed)."""
        while True:
            sent_ns = time.time_ns()
            payload = {"id": event_id, "key": key, "seq": seq, "sent_ns": sent_ns}
            status, retry_after = self._post(event_id, key, payload)
            self.answers.append(Answer(time.time_ns(), status, event_id))
            if status == 202:
                self.accepted.append(Published(event_id, key, seq, sent_ns))
                return True
            if self._stop.wait(min(RESEND_CAP_S, retry_after)):
                return False

    def _post(self, event_id: str, key: str, payload: dict[str, object]) -> tuple[int, float]:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event_id,
            "X-MSM-Key": key,
        }
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request(
                "POST", f"/v1/events/{EVENT_TYPE}", json.dumps(payload).encode(), headers
            )
            response = connection.getresponse()
            response.read()
            return response.status, _seconds(response.getheader("Retry-After"))
        except OSError:
            return 0, 1.0
        finally:
            connection.close()


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0
