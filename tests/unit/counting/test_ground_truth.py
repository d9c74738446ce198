"""Counting against human ground truth: PETS 2009 S2.L1 annotated boxes as detections.

With perfect boxes the only things that can go wrong are the tracker (id switches,
lost identities) and the line rule, so the counts must equal the ones derived in
shared/data/videos/PROVENANCE.md. The annotations are CC BY-NC-SA and live in
shared/ (``shared_dir()``), not in the repository; where they are missing the test fails,
as any missing resource does, instead of passing by skipping.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import shared_dir
from pipeline.counting import CameraCounter, LineRule
from pipeline.detections import Detections

GT = shared_dir() / "data/videos/pets09_s2l1_pedestrians.gt.txt"
WIDTH, HEIGHT = 768, 576
# x = 320 px over the full height, pointing up: "in" = left to right.
ROAD = LineRule("road", (320 / WIDTH, 1.0), (320 / WIDTH, 0.0))


@pytest.fixture(scope="module")
def gt_rows() -> np.ndarray:
    if not GT.exists():
        pytest.fail(f"ground truth not found at {GT}; set CAMCOUNT_SHARED to the shared folder")
    return np.loadtxt(GT, delimiter=",")


def _count(rows: np.ndarray, last_frame: int, step: int, interval_ms: int) -> tuple[int, int]:
    counter = CameraCounter([ROAD])
    totals = {"in": 0, "out": 0}
    for frame in range(1, last_frame + 1, step):  # gt frames are 1-based
        r = rows[rows[:, 0] == frame]
        xyxy = np.stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]], axis=1)
        xyxy = np.clip(xyxy / [WIDTH, HEIGHT, WIDTH, HEIGHT], 0.0, 1.0)
        dets = Detections.from_arrays(xyxy, np.full(len(r), 0.9), np.zeros(len(r)))
        for event in counter.apply(frame, (frame - 1) * interval_ms, dets, stream_id="pets").events:
            totals[event.direction] += 1
    return totals["in"], totals["out"]


@pytest.mark.parametrize(
    ("last_frame", "step", "interval_ms", "expected"),
    [
        (200, 1, 100, (2, 3)),  # quick subset, frames 0-199, at the file's 10 fps
        (795, 1, 100, (11, 14)),  # whole clip: one count per (person, direction)
        (795, 1, 143, (11, 14)),  # at the real 7 fps capture rate
        (795, 2, 100, (11, 14)),  # sampled down to 5 fps
    ],
)
def test_pets_line_counts_match_ground_truth(gt_rows, last_frame, step, interval_ms, expected):
    assert _count(gt_rows, last_frame, step, interval_ms) == expected
