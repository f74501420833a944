"""Consumed headers come as pairs (aiokafka) or a mapping (faust): one list either way."""

from __future__ import annotations

from pipeline import headers as h


def test_pairs_and_mappings_give_the_same_list_without_valueless_headers() -> None:
    pairs = [("a", b"1"), ("b", None), ("a", b"2")]
    assert h.from_consumed(pairs) == [("a", b"1"), ("a", b"2")]  # repeats kept, in order
    assert h.from_consumed({"a": b"1", "b": None}) == [("a", b"1")]
    assert h.from_consumed(None) == []
    assert h.from_consumed(()) == []
