"""Axis-aligned box maths shared by NMS, the tracker and the shadow comparator (pure numpy).

Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in any one unit. Inputs are never written to.
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of ``(N, 4)`` xyxy boxes; inverted boxes count as zero area."""
    sizes = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None)
    return sizes[:, 0] * sizes[:, 1]


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union ``(N, M)`` of every box of ``boxes_a`` with every box of
    ``boxes_b``; degenerate (zero-area) boxes have IoU 0 with everything rather than NaN."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
