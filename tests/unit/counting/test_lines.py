from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.counting.geometry import LEFT, ON_LINE, RIGHT
from pipeline.counting.lines import LineCounter, crossing_direction
from pipeline.counting.rules import LineRule

# Points right, so LEFT is above (y < 0.5) and "in" is top -> bottom.
HORIZONTAL = LineRule("h", (0.1, 0.5), (0.9, 0.5))
# Points up, so LEFT is x < 0.4 and "in" is left -> right.
VERTICAL_UP = LineRule("v", (0.4, 1.0), (0.4, 0.0))


def _at_x(x, ys):
    return [(x, y) for y in ys]


@pytest.mark.parametrize(
    ("prev_side", "curr_side", "within", "expected"),
    [
        (LEFT, RIGHT, True, "in"),  # left to right
        (RIGHT, LEFT, True, "out"),  # right to left
        (LEFT, RIGHT, False, None),  # crossed the infinite line beside the segment
        (LEFT, LEFT, True, None),  # stayed on one side
        (ON_LINE, RIGHT, True, None),  # side before is unknown
        (LEFT, ON_LINE, True, None),  # reached the band, not across
        (RIGHT, RIGHT, False, None),
    ],
)
def test_crossing_rule_is_a_pure_table(prev_side, curr_side, within, expected):
    assert crossing_direction(prev_side, curr_side, within) == expected


@pytest.mark.parametrize(
    ("rule", "anchors", "expected_in", "expected_out"),
    [
        (HORIZONTAL, _at_x(0.5, [0.40, 0.45, 0.55, 0.60]), 1, 0),  # top -> bottom is in
        (HORIZONTAL, _at_x(0.5, [0.60, 0.55, 0.45, 0.40]), 0, 1),  # bottom -> top is out
        (HORIZONTAL, _at_x(0.5, [0.40, 0.45, 0.50, 0.45, 0.40]), 0, 0),  # touches the line and leaves
        (HORIZONTAL, _at_x(0.5, [0.40, 0.45, 0.504, 0.45]), 0, 0),  # into the band and back
        (HORIZONTAL, _at_x(0.5, [0.40, 0.45, 0.504, 0.504]), 0, 0),  # stops in the band past the line
        (HORIZONTAL, _at_x(0.5, [0.40, 0.45, 0.51, 0.49, 0.51, 0.49, 0.51]), 1, 0),  # jitter after crossing
        (HORIZONTAL, _at_x(0.5, [0.4, 0.45, 0.55, 0.6, 0.45, 0.4, 0.55, 0.6, 0.45, 0.4]), 1, 1),  # to and fro
        (HORIZONTAL, _at_x(0.05, [0.40, 0.45, 0.55, 0.60]), 0, 0),  # beside the segment's start
        (HORIZONTAL, _at_x(0.95, [0.40, 0.45, 0.55, 0.60]), 0, 0),  # beyond its end
        (HORIZONTAL, _at_x(0.9, [0.40, 0.45, 0.55, 0.60]), 1, 0),  # exactly at its end
        (HORIZONTAL, [(0.0, 0.40), (0.05, 0.45), (0.15, 0.55), (0.2, 0.6)], 1, 0),  # diagonal, meets at x=0.1
        # Round the end below the line, then back up through the middle: only "out".
        (HORIZONTAL, _at_x(0.95, [0.4, 0.45, 0.55, 0.6]) + _at_x(0.5, [0.6, 0.55, 0.45, 0.4]), 0, 1),
        (HORIZONTAL, _at_x(0.5, [0.45, 0.55, 0.60]), 0, 0),  # one frame before crossing < min_frames 2
        (HORIZONTAL, _at_x(0.5, [0.50, 0.55, 0.60]), 0, 0),  # born on the line: no first side
        (HORIZONTAL, _at_x(0.5, [0.30, 0.35, 0.80]), 1, 0),  # big jump (dropped frames) still counts
        (VERTICAL_UP, [(0.30, 0.5), (0.35, 0.5), (0.45, 0.5), (0.5, 0.5)], 1, 0),  # left -> right is in
        (VERTICAL_UP, [(0.5, 0.5), (0.45, 0.5), (0.35, 0.5), (0.3, 0.5)], 0, 1),  # right -> left is out
        (VERTICAL_UP, [(0.30, 0.5), (0.35, 0.5), (0.45, 0.2), (0.5, 0.1)], 1, 0),  # diagonal through
    ],
)
def test_line_counter_table(rule, anchors, expected_in, expected_out, mock_tracks):
    counter = LineCounter(rule)
    crossings = [c for point in anchors for c in counter.update(mock_tracks({7: point}))]
    assert [c.direction for c in crossings].count("in") == expected_in
    assert [c.direction for c in crossings].count("out") == expected_out
    assert all(c.track_id == 7 for c in crossings)


@pytest.mark.parametrize(
    ("min_frames", "ys", "expected_in"),
    [
        (1, [0.45, 0.55], 1),  # one observation is enough
        (2, [0.45, 0.55], 0),  # needs two
        (2, [0.40, 0.45, 0.55], 1),
        (3, [0.40, 0.45, 0.55], 0),  # needs three
        (3, [0.40, 0.45, 0.502, 0.47, 0.55], 1),  # band observations neither add nor reset
        (3, [0.35, 0.40, 0.45, 0.55], 1),
    ],
)
def test_min_frames(min_frames, ys, expected_in, mock_tracks):
    rule = LineRule("h", (0.1, 0.5), (0.9, 0.5), min_frames=min_frames)
    counter = LineCounter(rule)
    crossings = [c for y in ys for c in counter.update(mock_tracks({1: (0.5, y)}))]
    assert len(crossings) == expected_in


def test_hysteresis_zero_counts_the_smallest_step_across(mock_tracks):
    rule = LineRule("h", (0.1, 0.5), (0.9, 0.5), hysteresis=0.0)
    counter = LineCounter(rule)
    crossings = [c for y in [0.49, 0.499, 0.501] for c in counter.update(mock_tracks({1: (0.5, y)}))]
    assert [c.direction for c in crossings] == ["in"]


@pytest.mark.parametrize(("track_class", "expected"), [(0, 0), (2, 1), (7, 1)])
def test_class_filter(track_class, expected, mock_tracks):
    counter = LineCounter(LineRule("h", (0.1, 0.5), (0.9, 0.5), classes=frozenset({2, 7})))
    crossings = []
    for y in [0.4, 0.45, 0.55]:
        crossings += counter.update(mock_tracks({1: (0.5, y)}, {1: track_class}))
    assert len(crossings) == expected
    assert all(c.class_id == track_class for c in crossings)


def test_anchor_decides_which_point_must_cross(mock_tracks):
    # Boxes are 0.12 tall: the bottom crosses y=0.5, the centre stays above it.
    bottom = LineCounter(HORIZONTAL)
    centre = LineCounter(LineRule("c", (0.1, 0.5), (0.9, 0.5), anchor="center"))
    counts = {"bottom": 0, "centre": 0}
    for y in [0.40, 0.45, 0.55]:
        tracks = mock_tracks({1: (0.5, y)})
        counts["bottom"] += len(bottom.update(tracks))
        counts["centre"] += len(centre.update(tracks))
    assert counts == {"bottom": 1, "centre": 0}


def test_tracks_are_independent_and_reported_in_id_order(mock_tracks):
    counter = LineCounter(HORIZONTAL)
    frames = [
        {3: (0.3, 0.40), 1: (0.6, 0.60), 2: (0.05, 0.40)},
        {3: (0.3, 0.45), 1: (0.6, 0.55), 2: (0.05, 0.45)},
        {3: (0.3, 0.55), 1: (0.6, 0.45), 2: (0.05, 0.55)},  # 3 in, 1 out, 2 beside the segment
    ]
    crossings = [c for f in frames for c in counter.update(mock_tracks(f))]
    assert [(c.track_id, c.direction) for c in crossings] == [(1, "out"), (3, "in")]


def test_a_track_unseen_for_a_while_keeps_its_side(mock_tracks):
    counter = LineCounter(HORIZONTAL)
    counter.update(mock_tracks({1: (0.5, 0.40)}))
    counter.update(mock_tracks({1: (0.5, 0.45)}))
    for _ in range(5):  # occluded: the tracker reports other tracks only
        counter.update(mock_tracks({2: (0.2, 0.2)}))
    assert [c.direction for c in counter.update(mock_tracks({1: (0.5, 0.7)}))] == ["in"]


def test_forget_evicts_dropped_tracks(mock_tracks):
    counter = LineCounter(HORIZONTAL)
    for step in range(3):
        counter.update(mock_tracks({i: (0.1 * (i % 9) + 0.05, 0.3 + 0.01 * step) for i in range(50)}))
    assert len(counter) == 50
    counter.forget(np.arange(0, 50, 2))
    assert len(counter) == 25
    counter.forget(np.arange(50))
    assert len(counter) == 0


def test_state_round_trip_gives_same_crossings(mock_tracks):
    counter = LineCounter(HORIZONTAL)
    counter.update(mock_tracks({1: (0.5, 0.40), 2: (0.3, 0.6)}))
    counter.update(mock_tracks({1: (0.5, 0.45), 2: (0.3, 0.55)}))
    restored = LineCounter.from_state(HORIZONTAL, json.loads(json.dumps(counter.to_state())))
    last = mock_tracks({1: (0.5, 0.55), 2: (0.3, 0.45)})
    assert restored.update(last) == counter.update(last)
    assert restored.to_state() == counter.to_state()
