"""Vectorised NMS against a brute-force pure-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import iou_matrix
from pipeline.inference.nms import batched_nms, nms


def reference_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, threshold, groups=None) -> list[int]:
    """Textbook greedy NMS: visit by score (ties by index), keep unless overlapped."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(
            (groups is not None and groups[i] != groups[k])
            or reference_iou(boxes[i], boxes[k]) <= threshold
            for k in kept
        ):
            kept.append(i)
    return kept


def random_boxes(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 40, (n, 2))
    scores = rng.choice([0.2, 0.5, 0.7, 0.9], n) if seed % 2 else rng.uniform(0, 1, n)
    return np.concatenate([xy, xy + wh], axis=1), scores


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.45, 0.7])
def test_nms_matches_reference_on_random_boxes(seed, threshold):
    # odd seeds draw from 4 score values, so ties are exercised
    boxes, scores = random_boxes(seed, 60)
    assert nms(boxes, scores, threshold).tolist() == reference_nms(boxes, scores, threshold)


@pytest.mark.parametrize("seed", range(10))
def test_batched_nms_matches_reference_per_group(seed):
    boxes, scores = random_boxes(seed, 80)
    groups = np.random.default_rng(seed).integers(0, 4, len(boxes))
    kept = batched_nms(boxes, scores, groups, 0.45).tolist()
    assert kept == reference_nms(boxes, scores, 0.45, groups)


@pytest.mark.parametrize(
    "boxes, scores, threshold, expected",
    [
        # no boxes
        (np.zeros((0, 4)), np.zeros(0), 0.5, []),
        # one box
        ([[0, 0, 1, 1]], [0.3], 0.5, [0]),
        # identical boxes: the best survives
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.4, 0.9], 0.5, [1]),
        # equal scores: input order decides
        ([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5], 0.5, [0]),
        # IoU exactly at the threshold (50/150 = 1/3) is kept, not suppressed
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 1 / 3, [0, 1]),
        # just above the threshold is suppressed
        ([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], 0.33, [0]),
        # zero-area boxes never overlap anything
        ([[5, 5, 5, 5], [0, 0, 10, 10]], [0.9, 0.8], 0.0, [0, 1]),
        # touching edges do not overlap
        ([[0, 0, 10, 10], [10, 0, 20, 10]], [0.9, 0.8], 0.0, [0, 1]),
    ],
)
def test_nms_edge_cases(boxes, scores, threshold, expected):
    kept = nms(np.asarray(boxes, float), np.asarray(scores, float), threshold)
    assert kept.tolist() == expected


def test_batched_nms_keeps_overlapping_boxes_of_other_groups():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 0, 1]), 0.5).tolist() == [0, 2]


def test_iou_matrix_matches_reference():
    a, _ = random_boxes(1, 7)
    b, _ = random_boxes(2, 5)
    expected = [[reference_iou(x, y) for y in b] for x in a]
    np.testing.assert_allclose(iou_matrix(a, b), expected, atol=1e-12)
