from __future__ import annotations

import numpy as np
import pytest

from pipeline.counting.geometry import (
    LEFT,
    ON_LINE,
    RIGHT,
    Anchor,
    anchor_points,
    crossing_within_extent,
    points_in_polygon,
    polygon_area,
    sides,
    signed_distance,
)

BOX = np.array([[0.2, 0.4, 0.4, 0.8]])


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        (Anchor.BOTTOM_CENTER, (0.3, 0.8)),
        (Anchor.CENTER, (0.3, 0.6)),
        (Anchor.TOP_CENTER, (0.3, 0.4)),
        (Anchor.CENTER_LEFT, (0.2, 0.6)),
        (Anchor.CENTER_RIGHT, (0.4, 0.6)),
        (Anchor.TOP_LEFT, (0.2, 0.4)),
        (Anchor.TOP_RIGHT, (0.4, 0.4)),
        (Anchor.BOTTOM_LEFT, (0.2, 0.8)),
        (Anchor.BOTTOM_RIGHT, (0.4, 0.8)),
        ("center", (0.3, 0.6)),  # config strings work too
    ],
)
def test_anchor_points(anchor, expected):
    np.testing.assert_allclose(anchor_points(BOX, anchor)[0], expected)


@pytest.mark.parametrize(
    ("start", "end", "point", "expected"),
    [
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.3), LEFT),  # segment points right: above is left
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.7), RIGHT),  # ... below is right
        ((0.9, 0.5), (0.1, 0.5), (0.5, 0.3), RIGHT),  # reversed segment swaps sides
        ((0.4, 1.0), (0.4, 0.0), (0.2, 0.5), LEFT),  # segment points up: x < X is left
        ((0.4, 1.0), (0.4, 0.0), (0.6, 0.5), RIGHT),
        ((0.4, 0.0), (0.4, 1.0), (0.2, 0.5), RIGHT),  # segment points down: x < X is right
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.5), ON_LINE),  # exactly on the line
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.504), ON_LINE),  # inside the 0.005 band
    ],
)
def test_side_convention(start, end, point, expected):
    distance = signed_distance(np.array([point]), start, end)
    assert sides(distance, hysteresis=0.005)[0] == expected


def test_signed_distance_is_euclidean():
    distance = signed_distance(np.array([[0.0, 0.0]]), (0.0, 1.0), (1.0, 0.0))
    assert distance[0] == pytest.approx(-np.sqrt(0.5))


@pytest.mark.parametrize(
    ("from_point", "to_point", "expected"),
    [
        ((0.5, 0.4), (0.5, 0.6), True),  # straight through the middle
        ((0.05, 0.4), (0.05, 0.6), False),  # beside the start of the segment
        ((0.95, 0.4), (0.95, 0.6), False),  # beyond its end
        ((0.0, 0.4), (0.2, 0.6), True),  # diagonal that meets the line at x=0.1 (the end)
        ((0.0, 0.3), (0.1, 0.4), False),  # does not reach the line at all
    ],
)
def test_crossing_within_extent(from_point, to_point, expected):
    result = crossing_within_extent(np.array([from_point]), np.array([to_point]), (0.1, 0.5), (0.9, 0.5))
    assert result[0] == expected


def test_points_in_concave_polygon():
    # An L shape: the notch at top right is outside.
    polygon = np.array([[0.1, 0.1], [0.4, 0.1], [0.4, 0.5], [0.8, 0.5], [0.8, 0.9], [0.1, 0.9]])
    points = np.array([[0.2, 0.2], [0.6, 0.3], [0.6, 0.7], [0.95, 0.7], [0.05, 0.5]])
    assert points_in_polygon(points, polygon).tolist() == [True, False, True, False, False]


def test_points_in_polygon_empty():
    assert points_in_polygon(np.zeros((0, 2)), np.array([[0, 0], [1, 0], [0, 1]])).shape == (0,)


def test_polygon_area():
    assert polygon_area(np.array([[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]])) == pytest.approx(0.25)
