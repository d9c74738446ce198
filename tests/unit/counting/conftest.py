"""Factories for synthetic detections and tracks, in normalised coordinates; Kalman helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from pipeline.counting.tracker import Tracks
from pipeline.detections import Detections


def full_covariance(blocks: np.ndarray) -> np.ndarray:
    """The 8x8 covariances that ``(N, 3, 4)`` Kalman blocks stand for (as tracker state version 1 saved them)."""
    cov = np.zeros((len(blocks), 8, 8))
    i = np.arange(4)
    cov[:, i, i], cov[:, i, i + 4], cov[:, i + 4, i], cov[:, i + 4, i + 4] = (
        blocks[:, 0], blocks[:, 1], blocks[:, 1], blocks[:, 2])
    return cov


def box_at(x: float, y: float, w: float = 0.04, h: float = 0.12) -> list[float]:
    """xyxy box whose bottom-centre is (x, y)."""
    return [x - w / 2, y - h, x + w / 2, y]


@pytest.fixture
def mock_detections() -> Callable[..., Detections]:
    def make(
        boxes: Sequence[Sequence[float]],
        scores: Sequence[float] | None = None,
        class_ids: Sequence[int] | None = None,
    ) -> Detections:
        n = len(boxes)
        return Detections.from_arrays(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            [0.9] * n if scores is None else scores,
            [0] * n if class_ids is None else class_ids,
        )

    return make


@pytest.fixture
def mock_tracks() -> Callable[..., Tracks]:
    """Tracks whose boxes have the given bottom-centre anchors."""

    def make(anchors: dict[int, tuple[float, float]], class_ids: dict[int, int] | None = None) -> Tracks:
        ids = sorted(anchors)
        return Tracks(
            track_ids=np.asarray(ids, np.int64),
            xyxy=np.asarray([box_at(*anchors[i]) for i in ids], np.float32).reshape(-1, 4),
            class_ids=np.asarray([(class_ids or {}).get(i, 0) for i in ids], np.int32),
            scores=np.full(len(ids), 0.9, np.float32),
        )

    return make
