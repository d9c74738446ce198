"""Greedy non-maximum suppression in numpy, pure and vectorised per kept box.

The greedy loop runs once per *kept* box and compares it with every remaining
candidate in one vectorised step, so the cost is O(kept x candidates) numpy work
rather than Python work. Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in any one unit.
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of ``(N, 4)`` xyxy boxes; inverted boxes count as zero area."""
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    heights = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    return widths * heights


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``(4,)`` box with each of ``(N, 4)`` boxes; 0 where the union is 0."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0.0, None) * np.clip(y2 - y1, 0.0, None)
    union = box_area(box[None, :])[0] + box_area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of two box sets (used by tests and by shadow comparison)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


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
        ious = iou_one_to_many(boxes[best], boxes[rest])
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
