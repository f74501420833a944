"""Rates between lag samples: records in and out per second, and when a backlog will be gone.

Lag alone cannot tell a backlog that is draining from one that is growing; two samples can.
*Rate in* is how fast a topic's end offsets grow (records produced), *rate out* how fast the
group's committed offsets grow (records consumed and committed); lag changes by ``in - out`` per
second, so a backlog drains in ``lag / (out - in)`` when ``out > in``.

Deltas are taken per partition and only where both samples know the offset, so a partition that
gains its first commit, or a topic appearing, never shows up as a burst. A committed offset that
moves backwards (a reset) counts as zero, not as negative throughput. Committed offsets move in
steps (Faust commits every 0.5 s), so per-interval rates jitter; each (group, topic) rate is an
exponentially weighted average with a half-life in seconds, not in samples, so it smooths the
same whatever ``--interval-s`` is. Everything here is pure: the sampler takes
:class:`~pipeline.ops.lag.LagReport` values, which tests build by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pipeline.errors import KafkaUnavailableError
from pipeline.ops.lag import LagReport, TopicLag

Key = tuple[str, str]  # (group, topic)
Trend = Literal["unknown", "caught_up", "draining", "growing", "steady", "stalled"]
# |out - in| below this many records/s, or below this share of the larger rate, is "no change".
MIN_NET_RATE = 0.05
RELATIVE_TOLERANCE = 0.02
DEFAULT_HALF_LIFE_S = 5.0


@dataclass(frozen=True)
class Flow:
    """Rates of one (group, topic), or totals of one group.

    ``rate_in``/``rate_out`` are records per second, None until two samples were compared;
    ``eta_s`` is set only while draining.
    """

    lag: int
    rate_in: float | None
    rate_out: float | None
    trend: Trend
    eta_s: float | None


@dataclass(frozen=True)
class FlowRates:
    """One refresh's rates; ``seconds`` since the previous sample (None for the first)."""

    seconds: float | None
    by_topic: Mapping[Key, Flow] = field(default_factory=dict)
    by_group: Mapping[str, Flow] = field(default_factory=dict)


def drain(lag: int, rate_in: float | None, rate_out: float | None) -> tuple[Trend, float | None]:
    """The trend of a backlog and, when it drains, the seconds until it is gone."""
    if lag <= 0:
        return "caught_up", None
    if rate_in is None or rate_out is None:
        return "unknown", None
    net = rate_out - rate_in
    if abs(net) <= max(MIN_NET_RATE, RELATIVE_TOLERANCE * max(rate_in, rate_out)):
        return ("stalled" if rate_out <= MIN_NET_RATE else "steady"), None
    if net > 0:
        return "draining", lag / net
    return "growing", None


def flow(lag: int, rate_in: float | None, rate_out: float | None) -> Flow:
    trend, eta = drain(lag, rate_in, rate_out)
    return Flow(lag, rate_in, rate_out, trend, eta)


_Offsets = dict[tuple[str, str, int], tuple[int | None, int | None]]  # -> (committed, end)


class RateSampler:
    """Feeds on successive lag reports; each :meth:`update` returns the rates so far.

    ``half_life_s`` is how long an old rate keeps half its weight; 0 disables smoothing.
    """

    def __init__(self, half_life_s: float = DEFAULT_HALF_LIFE_S) -> None:
        self.half_life_s = half_life_s
        self._offsets: _Offsets = {}
        self._at: float | None = None
        self._smoothed: dict[Key, tuple[float, float]] = {}

    def update(self, report: LagReport) -> FlowRates:
        offsets: _Offsets = {
            (g.group, t.topic, p.partition): (p.committed, p.end)
            for g in report.groups
            for t in g.topics
            for p in t.partitions
        }
        seconds = None if self._at is None else report.monotonic - self._at
        if seconds is not None and seconds <= 0:  # the same instant twice: nothing to learn
            return self._rates(report, seconds)
        if seconds is not None:
            weight = 1.0 if self.half_life_s <= 0 else 1 - 0.5 ** (seconds / self.half_life_s)
            smoothed: dict[Key, tuple[float, float]] = {}
            for g in report.groups:
                for t in g.topics:
                    raw = _raw_rates(g.group, t, self._offsets, seconds)
                    if raw is None:
                        continue
                    old = self._smoothed.get((g.group, t.topic))
                    if old is None:
                        smoothed[(g.group, t.topic)] = raw
                    else:
                        smoothed[(g.group, t.topic)] = (
                            old[0] + weight * (raw[0] - old[0]),
                            old[1] + weight * (raw[1] - old[1]),
                        )
            self._smoothed = smoothed
        self._offsets = offsets
        self._at = report.monotonic
        return self._rates(report, seconds)

    def _rates(self, report: LagReport, seconds: float | None) -> FlowRates:
        by_topic: dict[Key, Flow] = {}
        by_group: dict[str, Flow] = {}
        for g in report.groups:
            rated = [(t, self._smoothed.get((g.group, t.topic))) for t in g.topics]
            for t, rates in rated:
                rate_in, rate_out = rates if rates else (None, None)
                by_topic[(g.group, t.topic)] = flow(t.lag, rate_in, rate_out)
            known = [r for _, r in rated if r is not None]
            if known:
                by_group[g.group] = flow(g.lag, sum(r[0] for r in known), sum(r[1] for r in known))
            else:
                by_group[g.group] = flow(g.lag, None, None)
        return FlowRates(seconds, by_topic, by_group)


def _raw_rates(
    group: str, topic: TopicLag, before: _Offsets, seconds: float
) -> tuple[float, float] | None:
    """(in, out) records/s of one topic for one group; None when no partition compares."""
    grown = consumed = 0
    compared = False
    for p in topic.partitions:
        old = before.get((group, topic.topic, p.partition))
        if old is None:
            continue
        old_committed, old_end = old
        if p.end is not None and old_end is not None:
            grown += max(0, p.end - old_end)
            compared = True
        if p.committed is not None and old_committed is not None:
            consumed += max(0, p.committed - old_committed)
            compared = True
    return (grown / seconds, consumed / seconds) if compared else None


def sum_flows(flows: Iterable[Flow]) -> Flow:
    """Totals of several flows (a layer's topics); rates stay None unless every one is known."""
    items = list(flows)
    lag = sum(f.lag for f in items)
    if not items or any(f.rate_in is None or f.rate_out is None for f in items):
        return flow(lag, None, None)
    return flow(lag, sum(f.rate_in or 0.0 for f in items), sum(f.rate_out or 0.0 for f in items))


@dataclass(frozen=True)
class Tick:
    """One refresh of a watch: a report and its rates, or why there is none this time."""

    report: LagReport | None
    rates: FlowRates | None
    error: str | None = None


def watch(
    collect: Callable[[], LagReport],
    sampler: RateSampler,
    every_s: float,
    count: int | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Tick]:
    """Collects every ``every_s`` seconds (``count`` times, or forever) and yields each tick.

    Kafka going away is a tick with ``error`` set, and the watch goes on: an operator watching
    a recovery wants the table back when the broker is, not a dead command.
    """
    done = 0
    while count is None or done < count:
        started = clock()
        try:
            report = collect()
        except KafkaUnavailableError as exc:
            yield Tick(None, None, str(exc))
        else:
            yield Tick(report, sampler.update(report))
        done += 1
        if count is None or done < count:
            sleep(max(0.0, every_s - (clock() - started)))


def format_eta(f: Flow) -> str:
    """The ETA column: a duration while draining, else the trend in a word ("—" when fine)."""
    if f.trend == "draining" and f.eta_s is not None:
        return format_seconds(f.eta_s)
    if f.trend in ("growing", "stalled"):
        return f.trend
    if f.trend == "unknown":
        return ""
    return "—"


def format_seconds(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 100 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return ">100h"


def format_rate(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
