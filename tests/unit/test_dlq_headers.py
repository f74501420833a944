"""Redrive's header rewrite and redrive marks: pure logic, no broker."""

from __future__ import annotations

from pipeline import headers as h
from pipeline.agents.delivery_policy import ErrorChain
from pipeline.ops.dlq import DeadLetter
from pipeline.ops.dlq_read import Range
from pipeline.ops.dlq_redrive import RedrivePlan, advance_marks, redrive_headers

SOURCE = "ns.dlq.s:2:17"
DEAD = [
    (h.EVENT_ID, b"e-1"),
    (h.EVENT_TYPE, b"thing.created"),
    (h.KEY, b"k"),
    (h.PUBLISHED_AT, b"1000"),
    (h.DELIVER_AT, b"2000"),
    (h.TIERED_AT, b"1500"),
    (h.ATTEMPT, b"3"),
    (h.SUBSCRIBER, b"s"),
    (h.PRIORITY, b"high"),
    (h.TRACEPARENT, b"00-abc-def-01"),
    (h.TARGET, b"ns.sub.s"),
    (h.ERRORS, ErrorChain().to_json()),
    (h.FIRST_ATTEMPT_AT, b"2100"),
    (h.OUTCOME, b"retriable"),
    (h.RETRY_AFTER_MS, b"500"),
    (h.HANDLER_VERSION, b"canary"),
    (h.DLQ_REASON, b"exhausted"),
    (h.DLQ_AT, b"9000"),
    ("msm.dlq.future", b"x"),
    ("x-custom", b"kept"),
]


def test_rewrite_starts_a_fresh_attempt_and_says_where_from() -> None:
    rewritten = redrive_headers(DEAD, SOURCE)
    named = dict(rewritten)
    assert named[h.ATTEMPT] == b"1"
    assert named[h.REDRIVEN_FROM] == SOURCE.encode()
    assert [k for k, _ in rewritten].count(h.ATTEMPT) == 1


def test_rewrite_strips_errors_dlq_routing_and_per_attempt_headers() -> None:
    names = {k for k, _ in redrive_headers(DEAD, SOURCE)}
    for gone in (
        h.ERRORS,
        h.DLQ_REASON,
        h.DLQ_AT,
        "msm.dlq.future",
        h.TARGET,
        h.DELIVER_AT,
        h.TIERED_AT,
        h.OUTCOME,
        h.RETRY_AFTER_MS,
        h.HANDLER_VERSION,
    ):
        assert gone not in names


def test_rewrite_keeps_identity_and_order_of_the_rest() -> None:
    kept = [k for k, _ in redrive_headers(DEAD, SOURCE)]
    assert kept == [
        h.EVENT_ID,
        h.EVENT_TYPE,
        h.KEY,
        h.PUBLISHED_AT,
        h.SUBSCRIBER,
        h.PRIORITY,
        h.TRACEPARENT,
        h.FIRST_ATTEMPT_AT,
        "x-custom",
        h.ATTEMPT,
        h.REDRIVEN_FROM,
    ]


def test_a_second_redrive_replaces_redriven_from() -> None:
    once = redrive_headers(DEAD, SOURCE)
    twice = redrive_headers(once, "ns.dlq.s:0:99")
    assert [v for k, v in twice if k == h.REDRIVEN_FROM] == [b"ns.dlq.s:0:99"]


def _letter(partition: int, offset: int) -> DeadLetter:
    return DeadLetter(
        "ns.dlq.s", partition, offset, 0, "e", "t", None, 1, "", None, None, None, (), b""
    )


def test_marks_move_past_acknowledged_letters_up_to_the_first_failure() -> None:
    batch = [_letter(0, 5), _letter(1, 0), _letter(0, 6), _letter(1, 1), _letter(0, 7)]
    advanced = advance_marks(batch, {2: "timed out"}, {0: 5})
    assert advanced == {0: 6, 1: 2}  # partition 0 stops before offset 6; 7 is not marked


def test_marks_never_move_back() -> None:
    assert advance_marks([_letter(0, 3)], {}, {0: 10}) == {}


def test_plan_total_is_capped_by_the_limit() -> None:
    ranges = (Range(0, 2, 10), Range(1, 5, 5), Range(2, 0, 3))
    plan = RedrivePlan("s", "ns.dlq.s", "ns.sub.s", ranges, None, False)
    assert plan.total == 11
    assert RedrivePlan("s", "ns.dlq.s", "ns.sub.s", ranges, 4, False).total == 4
