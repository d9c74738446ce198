"""Greedy non-maximum suppression in numpy, pure and vectorised per kept box.

The greedy loop runs once per *kept* box and compares it with every remaining
candidate in one vectorised step, so the cost is O(kept x candidates) numpy work
rather than Python work. Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in any one unit.
"""

from __future__ import annotations

import numpy as np

from pipeline.boxes import iou_matrix


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first.

    A candidate is suppressed when its IoU with a kept box is strictly greater
    than ``iou_threshold``. Equal scores keep input order (stable sort), so the
    result is deterministic, which shadow comparison of two runs relies on.
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        ious = iou_matrix(boxes[best], boxes[rest])[0]
        order = rest[ious <= iou_threshold]
    return np.asarray(keep, np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """NMS run independently within each group id, in one pass.

    Each group is shifted by its own offset larger than any coordinate span, so
    boxes of different groups never overlap and one ``nms`` call serves all
    groups. Returns kept indices, highest score first.
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float64)
    span = float(boxes.max() - boxes.min()) + 1.0
    _, dense_groups = np.unique(np.asarray(groups), return_inverse=True)
    offsets = (dense_groups.astype(np.float64) * span)[:, None]
    return nms(boxes + offsets, scores, iou_threshold)
