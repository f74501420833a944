"""Lag arithmetic: joining offsets into rows, totals, partitions without commits, rates."""

from __future__ import annotations

from pipeline.ops.lag import (
    GroupLag,
    LagReport,
    Member,
    PartitionLag,
    TopicLag,
    build_group_lag,
    lag_rates,
)

M1 = Member("c-1", "client", "/127.0.0.1")


def _report(at: float, *groups: GroupLag) -> LagReport:
    return LagReport(groups, collected_at=1_700_000_000.0 + at, monotonic=at)


def _group(name: str, **lags: int) -> GroupLag:
    topics = tuple(
        TopicLag(topic, (PartitionLag(topic, 0, 0, lag),)) for topic, lag in sorted(lags.items())
    )
    return GroupLag(name, "Stable", 1, topics)


def test_lag_is_end_minus_committed() -> None:
    assert PartitionLag("t", 0, committed=3, end=10).lag == 7
    assert PartitionLag("t", 0, committed=10, end=10).lag == 0


def test_partition_without_commit_or_end_has_no_lag() -> None:
    # Kafka's ConsumerGroupCommand prints "-" for both; so do we (None).
    assert PartitionLag("t", 0, committed=None, end=10).lag is None
    assert PartitionLag("t", 0, committed=4, end=None).lag is None


def test_build_joins_committed_and_assigned_partitions_sorted() -> None:
    group = build_group_lag(
        "g",
        "Stable",
        1,
        committed={("b", 1): 5, ("a", 0): 2},
        assigned={("b", 0): M1, ("b", 1): M1},
        ends={("a", 0): 2, ("b", 0): 9, ("b", 1): 8},
    )
    assert [t.topic for t in group.topics] == ["a", "b"]
    a, b = group.topics
    assert a.partitions == (PartitionLag("a", 0, 2, 2, None),)
    assert b.partitions == (PartitionLag("b", 0, None, 9, M1), PartitionLag("b", 1, 5, 8, M1))


def test_totals_skip_partitions_without_commit_and_count_them() -> None:
    group = build_group_lag(
        "g",
        "Stable",
        1,
        committed={("t", 0): 1, ("t", 2): 0},
        assigned={("t", 1): M1},
        ends={("t", 0): 11, ("t", 1): 50, ("t", 2): 4},
    )
    (topic,) = group.topics
    assert topic.lag == 10 + 4
    assert topic.uncommitted == 1
    assert group.lag == 14
    assert group.uncommitted == 1


def test_group_and_report_totals_sum_topics_and_groups() -> None:
    report = _report(0, _group("g1", a=3, b=4), _group("g2", a=10))
    assert [g.lag for g in report.groups] == [7, 10]
    assert report.lag == 17


def test_group_that_never_committed_has_no_rows_and_zero_lag() -> None:
    group = build_group_lag("g", "Empty", 0, committed={}, assigned={}, ends={})
    assert group.topics == ()
    assert group.lag == 0
    assert group.uncommitted == 0


def test_unknown_end_offset_is_kept_as_none() -> None:
    group = build_group_lag("g", "Empty", 0, {("gone", 0): 3}, {}, ends={})
    assert group.topics[0].partitions[0] == PartitionLag("gone", 0, 3, None)
    assert group.lag == 0


def test_rates_per_group_and_topic() -> None:
    before = _report(10.0, _group("g1", a=100, b=0), _group("old", a=5))
    after = _report(12.0, _group("g1", a=60, b=10), _group("new", a=1))
    rates = lag_rates(before, after)
    assert rates.seconds == 2.0
    assert rates.by_group == {"g1": (70 - 100) / 2}
    assert rates.by_topic == {("g1", "a"): -20.0, ("g1", "b"): 5.0}


def test_rates_need_time_to_pass() -> None:
    report = _report(5.0, _group("g", a=1))
    rates = lag_rates(report, report)
    assert rates.by_group == {}
    assert rates.by_topic == {}
