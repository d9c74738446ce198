"""Box overlap shared by NMS, the tracker and the shadow comparator (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.boxes import iou_matrix


@pytest.mark.parametrize(
    ("box_a", "box_b", "expected"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),  # identical
        ([0, 0, 1, 1], [2, 2, 3, 3], 0.0),  # disjoint
        ([0, 0, 2, 1], [1, 0, 3, 1], 1 / 3),  # half of each overlaps
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges only
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # zero area: 0, not NaN
        ([0, 0, 2, 2], [0.5, 0.5, 1.5, 1.5], 0.25),  # one inside the other
    ],
)
def test_iou_table(box_a, box_b, expected):
    assert iou_matrix(np.array([box_a]), np.array([box_b]))[0, 0] == pytest.approx(expected)


def test_iou_matrix_shape_and_empty_inputs():
    a = np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32)
    b = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1, 0, 0.25], [0.25, 0, 1]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
