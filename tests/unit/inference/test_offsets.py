"""Commit positions move only past contiguous finished offsets (pure, no Kafka)."""

from __future__ import annotations

import pytest

from pipeline.inference.offsets import OffsetTracker

T = "frames"

# Each case: offsets polled from partition 0, the order they finish in, and the commit
# position after each finish (None: nothing committable yet).
CASES = [
    pytest.param([0, 1, 2], [0, 1, 2], [1, 2, 3], id="in-order"),
    pytest.param([0, 1, 2], [2, 1, 0], [None, None, 3], id="reverse-order-waits-for-the-first"),
    pytest.param([0, 1, 2, 3], [1, 0, 3, 2], [None, 2, 2, 4], id="out-of-order-pairs"),
    pytest.param([5, 9, 12], [9, 5, 12], [None, 10, 13], id="gaps-in-offsets-are-not-holes"),
]


@pytest.mark.parametrize("polled, finish_order, positions", CASES)
def test_position_is_after_the_contiguous_finished_prefix(polled, finish_order, positions) -> None:
    tracker = OffsetTracker()
    tokens = {o: tracker.add(T, 0, o) for o in polled}
    for offset, expected in zip(finish_order, positions):
        tracker.done(tokens[offset])
        assert tracker.position(T, 0) == expected


def test_take_committable_reports_each_move_once_per_partition() -> None:
    tracker = OffsetTracker()
    a, b = tracker.add(T, 0, 10), tracker.add(T, 1, 3)
    assert tracker.take_committable() == {}
    tracker.done(a)
    tracker.done(b)
    assert tracker.take_committable() == {(T, 0): 11, (T, 1): 4}
    assert tracker.take_committable() == {}


def test_pending_counts_unfinished_by_partition() -> None:
    tracker = OffsetTracker()
    tokens = [tracker.add(T, p, o) for p in (0, 1) for o in range(3)]
    tracker.done(tokens[0])
    assert tracker.pending() == 5
    assert tracker.pending([(T, 0)]) == 2
    assert tracker.pending([(T, 7)]) == 0


def test_a_forgotten_partition_ignores_late_acks_even_after_reassignment() -> None:
    tracker = OffsetTracker()
    stale = tracker.add(T, 0, 0)
    tracker.forget([(T, 0)])
    fresh = tracker.add(T, 0, 0)  # re-assigned: polled again from the committed offset
    assert tracker.done(stale) is False
    assert tracker.position(T, 0) is None
    assert tracker.done(fresh) is True
    assert tracker.position(T, 0) == 1


def test_offsets_must_increase_within_a_partition() -> None:
    tracker = OffsetTracker()
    tracker.add(T, 0, 4)
    with pytest.raises(ValueError):
        tracker.add(T, 0, 4)
