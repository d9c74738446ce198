"""The columnar detections record passed between inference, tracking and counting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes of one frame as parallel numpy arrays.

    ``xyxy`` is ``(N, 4)`` float32 in normalised image coordinates (0..1, x right,
    y down), so rules written in pixels of one resolution still apply when a camera
    is downscaled; ``scores`` is ``(N,)`` float32 in 0..1; ``class_ids`` is ``(N,)``
    int32 model class ids.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must have shape ({n}, 4), got {self.xyxy.shape}")
        if self.class_ids.shape != (n,) or self.scores.shape != (n,):
            raise ValueError("scores and class_ids must be 1-D and as long as xyxy")

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int32),
        )

    @classmethod
    def from_arrays(cls, xyxy, scores, class_ids) -> "Detections":
        """Build from any array-likes, coercing dtypes and shapes."""
        return cls(
            xyxy=np.asarray(xyxy, np.float32).reshape(-1, 4),
            scores=np.asarray(scores, np.float32).reshape(-1),
            class_ids=np.asarray(class_ids, np.int32).reshape(-1),
        )

    def __getitem__(self, mask) -> "Detections":
        return Detections(self.xyxy[mask], self.scores[mask], self.class_ids[mask])
