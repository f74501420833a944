"""Consumer lag per MSM layer, sampled once a second in a background thread during a bench.

Each layer is its own consumer group (``<namespace>.<layer>``), so a group's lag is the layer's
backlog. Samples are kept with their time so a window (one sustained step, one latency phase)
can take just its own. Kafka hiccups skip a sample, they do not stop the bench.
"""

from __future__ import annotations

import threading
import time

from loadtest.model import Series
from loadtest.stats import SERIES_LAG
from pipeline.ops.lag import collect_lag, open_admin
from pipeline.topology.topics import LAYERS


class LagSampler:
    def __init__(self, bootstrap: str, namespace: str, interval_s: float = 1.0) -> None:
        self._admin = open_admin(bootstrap)
        self._groups = {f"{namespace}.{layer}": layer for layer in LAYERS}
        self._interval_s = interval_s
        self._samples: list[tuple[float, dict[str, int]]] = []  # (monotonic, layer -> lag)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-sampler", daemon=True)
        self.errors = 0

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                report = collect_lag(self._admin, list(self._groups), timeout_s=5.0)
            except Exception:  # a missed sample is fine, a dead sampler is not
                self.errors += 1
            else:
                lags: dict[str, int] = {
                    self._groups[g.group]: g.lag for g in report.groups if not g.error
                }
                with self._lock:
                    self._samples.append((began, lags))
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))

    def latest_total(self) -> int | None:
        with self._lock:
            return sum(self._samples[-1][1].values()) if self._samples else None

    def window(self, since: float, until: float | None = None) -> dict[str, Series]:
        """``lag.<layer>`` and ``lag.total`` series for samples taken in [since, until]."""
        end = time.monotonic() if until is None else until
        with self._lock:
            chosen = [(t, lags) for t, lags in self._samples if since <= t <= end]
        series: dict[str, Series] = {}
        for t, lags in chosen:
            for layer in LAYERS:
                series.setdefault(f"{SERIES_LAG}{layer}", []).append(
                    (t - since, lags.get(layer, 0))
                )
            series.setdefault(f"{SERIES_LAG}total", []).append((t - since, sum(lags.values())))
        return series
