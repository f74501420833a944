"""In-flight accounting by task id, and the AIMD limit: back off on trouble, recover after."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.gate import (
    Aimd,
    AimdSettings,
    FlowError,
    InFlight,
    Signal,
    share_in_flight,
    signal_for_http,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("status", "signal"),
    [
        (200, Signal.SUCCESS),
        (204, Signal.SUCCESS),
        (408, Signal.TIMEOUT),
        (504, Signal.TIMEOUT),
        (429, Signal.THROTTLED),
        (503, Signal.UNAVAILABLE),
        (500, Signal.ERROR),
        (502, Signal.ERROR),
        (404, Signal.ERROR),
        (302, Signal.ERROR),
    ],
)
def test_http_statuses_as_signals(status: int, signal: Signal) -> None:
    assert signal_for_http(status) is signal


def test_in_flight_counts_each_task_once() -> None:
    flight = InFlight(max_in_flight=2)
    assert flight.start("a", 0.0)
    assert flight.start("a", 1.0)  # a redelivered dispatch takes no second slot
    assert len(flight) == 1
    assert flight.start("b", 2.0)
    assert not flight.has_room()
    assert not flight.start("c", 2.0)
    assert "c" not in flight
    assert flight.finish("a", 5.0) == 5.0  # in flight since its first start
    assert flight.finish("a", 6.0) is None  # a duplicate outcome frees nothing
    assert len(flight) == 1
    assert flight.has_room()


def test_the_adaptive_limit_caps_below_max_in_flight() -> None:
    flight = InFlight(max_in_flight=3)
    flight.start("a", 0.0)
    assert flight.has_room(limit=2)
    assert not flight.has_room(limit=1)
    assert flight.has_room(limit=50)  # never above max_in_flight either
    flight.start("b", 0.0)
    flight.start("c", 0.0)
    assert not flight.has_room(limit=50)


def test_overdue_tasks_are_found_for_the_caller_to_time_out() -> None:
    flight = InFlight(max_in_flight=10)
    flight.start("old", 0.0)
    flight.start("new", 25.0)
    assert flight.overdue(now=31.0, older_than=30.0) == ["old"]
    assert flight.overdue(now=30.0, older_than=30.0) == []


def test_max_in_flight_is_shared_among_members_without_exceeding_it() -> None:
    assert share_in_flight(200, 1) == 200
    assert share_in_flight(200, 3) == 66
    assert 3 * share_in_flight(200, 3) <= 200
    assert share_in_flight(2, 5) == 1  # every member may still dispatch
    with pytest.raises(FlowError):
        share_in_flight(10, 0)


def test_in_flight_needs_room_for_one() -> None:
    with pytest.raises(FlowError):
        InFlight(0)


@pytest.mark.parametrize("signal", [Signal.TIMEOUT, Signal.THROTTLED, Signal.UNAVAILABLE])
def test_trouble_halves_the_limit_once_per_cooldown(signal: Signal) -> None:
    clock = FakeClock()
    aimd = Aimd(100, clock=clock)
    assert aimd.limit == 100
    assert aimd.record(signal) == 50
    assert aimd.record(signal) == 50  # the same outage, answered by many tasks at once
    clock.now += 1.0
    assert aimd.record(signal) == 25


def test_the_limit_never_drops_below_one() -> None:
    clock = FakeClock()
    aimd = Aimd(4, clock=clock)
    for _ in range(10):
        aimd.record(Signal.THROTTLED)
        clock.now += 2
    assert aimd.limit == 1


def test_a_window_of_successes_as_large_as_the_limit_adds_one() -> None:
    aimd = Aimd(10, clock=FakeClock(), initial=4)
    assert [aimd.record(Signal.SUCCESS) for _ in range(4)] == [4, 4, 4, 5]
    assert [aimd.record(Signal.SUCCESS) for _ in range(5)] == [5, 5, 5, 5, 6]


def test_the_limit_never_exceeds_max() -> None:
    aimd = Aimd(3, clock=FakeClock())
    for _ in range(100):
        aimd.record(Signal.SUCCESS)
    assert aimd.limit == 3


def test_scattered_errors_do_not_back_off() -> None:
    clock = FakeClock()
    aimd = Aimd(100, AimdSettings(error_rate=0.2, min_samples=20), clock=clock)
    for i in range(200):
        aimd.record(Signal.ERROR if i % 10 == 0 else Signal.SUCCESS)  # 10 % errors
        clock.now += 0.01
    assert aimd.limit == 100


def test_an_error_rate_above_the_threshold_backs_off() -> None:
    clock = FakeClock()
    aimd = Aimd(100, AimdSettings(error_rate=0.2, min_samples=20), clock=clock)
    for _ in range(10):
        aimd.record(Signal.ERROR)  # too few outcomes to judge a rate
    assert aimd.limit == 100
    for i in range(30):
        aimd.record(Signal.ERROR if i % 2 else Signal.SUCCESS)
    assert aimd.error_rate > 0.2
    assert aimd.limit == 50


def test_successes_while_the_error_rate_is_high_do_not_grow_the_limit() -> None:
    clock = FakeClock()
    aimd = Aimd(100, AimdSettings(min_samples=5, window=10.0), clock=clock, initial=2)
    for _ in range(5):
        aimd.record(Signal.ERROR)
    assert aimd.limit == 1
    for _ in range(5):
        aimd.record(Signal.SUCCESS)  # 50 % errors in the window still
    assert aimd.limit == 1
    clock.now += 11  # the errors leave the window
    assert aimd.error_rate == 0.0
    aimd.record(Signal.SUCCESS)
    assert aimd.limit == 2


def test_backs_off_to_the_subscribers_capacity_and_recovers_when_it_clears() -> None:
    """A subscriber answering 429 whenever more than ``capacity`` tasks are in flight."""
    clock = FakeClock()
    aimd = Aimd(200, clock=clock)

    def run(capacity: int, seconds: float) -> list[int]:
        limits = []
        for _ in range(int(seconds * 10)):  # every 100 ms, a round of `limit` tasks finishes
            signal = Signal.THROTTLED if aimd.limit > capacity else Signal.SUCCESS
            for _ in range(aimd.limit):
                aimd.record(signal)
            clock.now += 0.1
            limits.append(aimd.limit)
        return limits

    troubled = run(capacity=30, seconds=60)[100:]  # after the first 10 s
    assert max(troubled) <= 31
    assert min(troubled) >= 15  # a sawtooth between half the capacity and the capacity
    assert sum(troubled) / len(troubled) > 20
    recovered = run(capacity=1000, seconds=60)
    assert recovered[-1] == 200


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(Signal)), st.floats(0, 3)), min_size=1, max_size=300
    ),
    max_limit=st.integers(1, 500),
)
def test_the_limit_stays_within_bounds(steps: list[tuple[Signal, float]], max_limit: int) -> None:
    clock = FakeClock()
    aimd = Aimd(max_limit, clock=clock)
    for signal, elapsed in steps:
        clock.now += elapsed
        limit = aimd.record(signal)
        assert 1 <= limit <= max_limit
        assert 0.0 <= aimd.error_rate <= 1.0


@pytest.mark.parametrize(
    "settings",
    [
        {"increase": 0},
        {"decrease": 1.0},
        {"decrease": 0.0},
        {"cooldown": -1.0},
        {"window": 0.0},
        {"error_rate": 1.0},
        {"min_samples": 0},
    ],
)
def test_unusable_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(FlowError):
        AimdSettings(**settings)  # type: ignore[arg-type]  # float for int fields, on purpose


def test_initial_is_clamped() -> None:
    assert Aimd(10, initial=50).limit == 10
    assert Aimd(10, initial=0).limit == 1
    with pytest.raises(FlowError):
        Aimd(0)
