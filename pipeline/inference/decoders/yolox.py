"""Decoder for YOLOX exports with ``decode_in_inference=False`` (no NMS in the graph).

Rows are anchor points in level order (stride 8, 16, 32), row-major within a
level; each row is ``[tx, ty, tw, th, obj, cls_0..cls_C-1]`` with obj and cls
already through a sigmoid (shared/models/PROVENANCE.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.detections import Detections
from pipeline.inference.base import FrameMeta
from pipeline.inference.decoders.base import DecodeSettings
from pipeline.inference.nms import batched_nms


def yolox_grid(
    input_hw: tuple[int, int], strides: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell ``(gx, gy)`` ``(R, 2)`` and stride ``(R,)`` of every output row."""
    grids, row_strides = [], []
    for stride in strides:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        gy, gx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack((gx, gy), axis=-1).reshape(-1, 2))
        row_strides.append(np.full(rows * cols, stride))
    return (
        np.concatenate(grids).astype(np.float32),
        np.concatenate(row_strides).astype(np.float32),
    )


class YoloxDecoder:
    """Grid decode, obj x cls scores, score floor, grouped NMS, back to the frame."""

    def __init__(
        self,
        input_hw: tuple[int, int],
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        group_ids: np.ndarray | None = None,
        settings: DecodeSettings = DecodeSettings(),
    ) -> None:
        self.grid, self.strides = yolox_grid(input_hw, strides)
        self.num_classes = num_classes
        self.settings = settings
        if settings.class_agnostic:
            group_ids = np.zeros(num_classes, np.int64)
        elif group_ids is None:
            group_ids = np.arange(num_classes, dtype=np.int64)
        if len(group_ids) != num_classes:
            raise ValueError(f"{len(group_ids)} group ids for {num_classes} classes")
        self.group_ids = np.asarray(group_ids, np.int64)

    @property
    def row_shape(self) -> tuple[int, int]:
        """Shape ``(R, 5 + C)`` of one frame's output."""
        return len(self.grid), 5 + self.num_classes

    def decode_batch(
        self, outputs: Sequence[np.ndarray], metas: Sequence[FrameMeta]
    ) -> list[Detections]:
        batch = outputs[0]
        if batch.shape != (len(metas), *self.row_shape):
            raise ValueError(
                f"YOLOX output shape {batch.shape} != {(len(metas), *self.row_shape)}"
            )
        return [self.decode_frame(rows, meta) for rows, meta in zip(batch, metas)]

    def decode_frame(self, rows: np.ndarray, meta: FrameMeta) -> Detections:
        """One frame's ``(R, 5 + C)`` rows to normalised ``Detections``."""
        floor = self.settings.score_floor
        # obj * cls <= obj, so rows with obj below the floor can never pass.
        index = np.flatnonzero(rows[:, 4] >= floor)
        class_ids = rows[index, 5:].argmax(axis=1)
        scores = rows[index, 4] * rows[index, 5 + class_ids]
        passed = scores >= floor
        index, class_ids, scores = index[passed], class_ids[passed], scores[passed]
        top_k = self.settings.pre_nms_top_k
        if len(scores) > top_k:
            best = np.argpartition(-scores, top_k - 1)[:top_k]
            index, class_ids, scores = index[best], class_ids[best], scores[best]
        boxes = self._boxes(rows[index, :4], index)
        keep = batched_nms(
            boxes, scores, self.group_ids[class_ids], self.settings.nms_iou
        )[: self.settings.max_detections]
        return _to_frame(boxes[keep], scores[keep], class_ids[keep], meta)

    def _boxes(self, raw: np.ndarray, index: np.ndarray) -> np.ndarray:
        """xyxy in model-input pixels from ``[tx, ty, tw, th]`` of rows ``index``."""
        stride = self.strides[index, None]
        centre = (raw[:, :2] + self.grid[index]) * stride
        with np.errstate(over="ignore"):
            size = np.exp(raw[:, 2:4]) * stride
        return np.concatenate((centre - size / 2, centre + size / 2), axis=1)


def _to_frame(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, meta: FrameMeta
) -> Detections:
    """Undo the letterbox scale, clip to the frame, drop empty boxes, normalise."""
    limits = np.array([meta.width, meta.height, meta.width, meta.height], np.float32)
    xyxy = np.clip(boxes / meta.ratio, 0.0, limits)
    non_empty = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return Detections.from_arrays(
        xyxy[non_empty] / limits, scores[non_empty], class_ids[non_empty]
    )
