"""Box agreement, percentiles and window records of the comparator (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.shadow.comparator import (
    WindowComparison, comparison_row, COMPARISON_COLUMNS, compare_frame, match_count, percentile,
    window_bounds,
)

PERSON, CAR = 0, 2


def box(class_id: int, x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> dict:
    return dict(class_id=class_id, score=score, x1=x1, y1=y1, x2=x2, y2=y2)


@pytest.mark.parametrize("primary, candidate, scores, expected", [
    # the same boxes: all match
    ([[0, 0, .2, .2], [.5, .5, .7, .7]], [[0, 0, .2, .2], [.5, .5, .7, .7]], [.9, .8], 2),
    # shifted by a quarter of the width: IoU 0.6 >= 0.5, matches
    ([[0, 0, .4, .4]], [[.05, 0, .45, .4]], [.9], 1),
    # shifted by half: IoU 1/3 < 0.5, no match
    ([[0, 0, .4, .4]], [[.2, 0, .6, .4]], [.9], 0),
    # two candidates on one primary box: only one may take it
    ([[0, 0, .4, .4]], [[0, 0, .4, .4], [0, 0, .39, .4]], [.5, .9], 1),
    # nothing on one side
    ([], [[0, 0, .4, .4]], [.9], 0),
    ([[0, 0, .4, .4]], [], [], 0),
])
def test_match_count(primary, candidate, scores, expected) -> None:
    p = np.asarray(primary, float).reshape(-1, 4)
    c = np.asarray(candidate, float).reshape(-1, 4)
    assert match_count(p, c, scores) == expected


def test_boxes_of_different_classes_never_match() -> None:
    tallies = compare_frame([box(PERSON, 0, 0, .2, .2)], [box(CAR, 0, 0, .2, .2)])
    assert (tallies[PERSON].matched, tallies[PERSON].primary_boxes, tallies[PERSON].candidate_boxes) == (0, 1, 0)
    assert (tallies[CAR].matched, tallies[CAR].primary_boxes, tallies[CAR].candidate_boxes) == (0, 0, 1)


def test_window_record_of_an_identical_candidate() -> None:
    w = WindowComparison("cam-0", 0, 10_000, ("m", "1"), ("m", "2"))
    for i in range(4):
        boxes = [box(PERSON, .1, .1, .3, .5), box(PERSON, .5, .1, .7, .6, .6)]
        w.add({"boxes": boxes, "inference_ms": 10.0 + i}, {"boxes": boxes, "inference_ms": 20.0 + i})
    r = w.record(["person", "bicycle", "car"])
    assert r["frames_compared"] == 4 and r["count_diff"] == 0
    assert r["classes"] == [dict(class_name="person", matched=8, candidate_boxes=8, primary_boxes=8,
                                 precision=1.0, recall=1.0)]
    assert r["primary_latency_p50_ms"] == 11.5 and r["candidate_latency_p95_ms"] == pytest.approx(22.85)
    assert len(comparison_row(r)) == len(COMPARISON_COLUMNS)


def test_precision_and_recall_of_a_partial_candidate() -> None:
    w = WindowComparison("cam-0", 0, 10_000, ("m", "1"), ("m", "2"))
    primary = [box(PERSON, 0, 0, .2, .2), box(PERSON, .5, .5, .7, .7)]
    candidate = [box(PERSON, 0, 0, .2, .2), box(PERSON, .8, .8, .9, .9), box(PERSON, .3, .0, .4, .1)]
    w.add({"boxes": primary, "inference_ms": 1.0}, {"boxes": candidate, "inference_ms": 1.0}, count_diff=-1)
    (person,) = w.record(["person"])["classes"]
    assert person["precision"] == pytest.approx(1 / 3) and person["recall"] == 0.5
    assert w.record(["person"])["count_diff"] == -1


@pytest.mark.parametrize("ts_ms, size_ms, expected", [
    (0, 10_000, (0, 10_000)),
    (9_999, 10_000, (0, 10_000)),
    (10_000, 10_000, (10_000, 20_000)),  # half-open: the end belongs to the next window
])
def test_window_bounds(ts_ms, size_ms, expected) -> None:
    assert window_bounds(ts_ms, size_ms) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 95) == 0.0 and percentile([3.0], 50) == 3.0
