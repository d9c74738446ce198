"""Fixtures for inference tests: the model folder and real pets09 frames.

The shared folder is ``pipeline.config.shared_dir()``: ``$CAMCOUNT_SHARED``, else
``<repo>/../shared``. A missing file fails the test with that hint, never skips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import shared_dir

PETS09 = "data/videos/pets09_s2l1_pedestrians.avi"
PETS09_FRAMES = (0, 25, 50, 75, 100, 125, 150, 175)


def shared_file(relative: str) -> Path:
    path = shared_dir() / relative
    if not path.is_file():
        pytest.fail(f"{path} not found; set CAMCOUNT_SHARED to the shared folder")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return shared_file("models/yolox_nano_dynbatch.onnx").parent


@pytest.fixture(scope="session")
def pets09_frames() -> dict[int, np.ndarray]:
    """BGR frames of the pets09 clip by frame number, decoded with PyAV."""
    import av

    frames: dict[int, np.ndarray] = {}
    with av.open(str(shared_file(PETS09))) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in PETS09_FRAMES:
                frames[number] = frame.to_ndarray(format="bgr24")
            if number >= max(PETS09_FRAMES):
                break
    return frames
