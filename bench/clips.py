"""Frames of a sample clip for the benchmarks: decoded BGR, and JPEG-encoded as ingest
encodes them (``pipeline.ingest.encode.encode_bgr``)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from pipeline.ingest.encode import downscale, encode_bgr


def read_frames(video: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of ``video`` as BGR arrays."""
    frames = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                break
    return frames


def read_jpegs(video: Path, count: int, quality: int,
               max_width: int | None = None) -> tuple[list[np.ndarray], list[bytes]]:
    """The first ``count`` frames of ``video``, and each as a JPEG of ``quality``; both
    downscaled to at most ``max_width`` wide, as ingest's ``max_width`` does."""
    frames = [downscale(frame, max_width) for frame in read_frames(video, count)]
    return frames, [encode_bgr(frame, quality).data for frame in frames]
