"""Side-effect-free geometry for the rules, vectorised over tracks.

All coordinates are normalised image coordinates: x right, y down, 0..1.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

# Side codes. LEFT/RIGHT are as seen by someone on screen looking from the
# segment's start to its end; ON_LINE means "within the hysteresis band".
LEFT = -1
ON_LINE = 0
RIGHT = 1
# Slack on the segment's ends, as a fraction of its length: float32 boxes put an
# anchor "exactly at the end" a few 1e-8 either side of it.
_EXTENT_SLACK = 1e-6


class Anchor(str, Enum):
    """Which point of a box stands for the object; bottom-centre is where feet and wheels meet the ground."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"
    CENTER_LEFT = "center_left"
    CENTER_RIGHT = "center_right"
    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


# Fraction of the way from (x1, y1) to (x2, y2) for each anchor.
_ANCHOR_FRACTIONS: dict[Anchor, tuple[float, float]] = {
    Anchor.BOTTOM_CENTER: (0.5, 1.0),
    Anchor.CENTER: (0.5, 0.5),
    Anchor.TOP_CENTER: (0.5, 0.0),
    Anchor.CENTER_LEFT: (0.0, 0.5),
    Anchor.CENTER_RIGHT: (1.0, 0.5),
    Anchor.TOP_LEFT: (0.0, 0.0),
    Anchor.TOP_RIGHT: (1.0, 0.0),
    Anchor.BOTTOM_LEFT: (0.0, 1.0),
    Anchor.BOTTOM_RIGHT: (1.0, 1.0),
}


def anchor_points(xyxy: np.ndarray, anchor: Anchor) -> np.ndarray:
    """``(N, 2)`` float64 anchor point of each ``(N, 4)`` xyxy box."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    fx, fy = _ANCHOR_FRACTIONS[Anchor(anchor)]
    x = xyxy[:, 0] + fx * (xyxy[:, 2] - xyxy[:, 0])
    y = xyxy[:, 1] + fy * (xyxy[:, 3] - xyxy[:, 1])
    return np.stack([x, y], axis=1)


def signed_distance(points: np.ndarray, start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    """Distance of each point from the infinite line through the segment; < 0 is LEFT.

    With y pointing down, the 2-D cross product ``d x (p - start)`` is negative for
    points on the on-screen left of the direction ``d = end - start``.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    p1 = np.asarray(start, np.float64)
    d = np.asarray(end, np.float64) - p1
    rel = points - p1
    cross = d[0] * rel[:, 1] - d[1] * rel[:, 0]
    return cross / np.hypot(d[0], d[1])


def sides(distance: np.ndarray, hysteresis: float) -> np.ndarray:
    """Side code per point: LEFT or RIGHT beyond the band ``|distance| <= hysteresis``, else ON_LINE."""
    distance = np.asarray(distance, np.float64)
    out = np.full(distance.shape, ON_LINE, np.int8)
    out[distance < -hysteresis] = LEFT
    out[distance > hysteresis] = RIGHT
    return out


def crossing_within_extent(
    from_points: np.ndarray,
    to_points: np.ndarray,
    start: tuple[float, float],
    end: tuple[float, float],
) -> np.ndarray:
    """Whether each move ``from -> to`` meets the infinite line inside the segment.

    Meant for moves whose ends lie on opposite sides: the point where the move meets
    the line is projected onto the segment and must fall between its ends
    (inclusive, give or take float error). Moves that do not reach the line give False.
    """
    a = np.asarray(from_points, np.float64).reshape(-1, 2)
    b = np.asarray(to_points, np.float64).reshape(-1, 2)
    dist_a = signed_distance(a, start, end)
    dist_b = signed_distance(b, start, end)
    denom = dist_a - dist_b
    crosses = (np.sign(dist_a) != np.sign(dist_b)) & (denom != 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, dist_a / denom, 0.0)
    hit = a + t[:, None] * (b - a)
    p1 = np.asarray(start, np.float64)
    d = np.asarray(end, np.float64) - p1
    u = ((hit - p1) @ d) / float(d @ d)
    return crosses & (u >= -_EXTENT_SLACK) & (u <= 1.0 + _EXTENT_SLACK)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: True for each ``(N, 2)`` point inside the ``(K, 2)`` polygon.

    Vectorised over points and edges; points exactly on an edge may fall either way.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = pts[:, 0:1], pts[:, 1:2]
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]
    x2, y2 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = straddles & (x < x_cross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned shoelace area, used to refuse degenerate zones."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)
