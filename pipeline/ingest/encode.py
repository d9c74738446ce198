"""Decoded video frame -> (optionally downscaled) JPEG bytes.

OpenCV's libjpeg-turbo encoder was measured against FFmpeg's ``mjpeg`` encoder through
PyAV on the sample clips (768x576 and 640x352, one core): converting the decoder's
yuv420p planes with ``cv2.cvtColor(I420 -> BGR)`` and ``cv2.imencode`` took ~1.0-1.3 ms a
frame, PyAV's own ``to_ndarray('bgr24')`` conversion before ``imencode`` ~3.5 ms, and PyAV's
``mjpeg`` encoder ~5.7 ms. So the yuv420p fast path below is used whenever it applies;
other pixel formats go through swscale to BGR. (Colour: cvtColor assumes BT.601 limited
range, as swscale does by default; HD BT.709 sources come out slightly off in hue, which
does not matter to a detector.)
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    width: int
    height: int


def scaled_size(width: int, height: int, max_width: int | None) -> tuple[int, int]:
    """The output size: at most ``max_width`` wide, same aspect ratio, even height (>= 2)."""
    if max_width is None or width <= max_width:
        return width, height
    new_height = max(2, 2 * round(height * max_width / width / 2))
    return max_width, new_height


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """The frame as an ``(h, w, 3)`` BGR array."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def downscale(image: np.ndarray, max_width: int | None) -> np.ndarray:
    """A BGR array at most ``max_width`` wide (area interpolation; see ``scaled_size``)."""
    height, width = image.shape[:2]
    out_width, out_height = scaled_size(width, height, max_width)
    if (out_width, out_height) == (width, height):
        return image
    return cv2.resize(image, (out_width, out_height), interpolation=cv2.INTER_AREA)


def encode_bgr(image: np.ndarray, quality: int, max_width: int | None = None) -> EncodedImage:
    """JPEG-encode a BGR array, downscaled first when wider than ``max_width``."""
    image = downscale(image, max_width)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {image.shape[1]}x{image.shape[0]} image")
    return EncodedImage(buf.tobytes(), image.shape[1], image.shape[0])


def encode_frame(frame: av.VideoFrame, quality: int, max_width: int | None = None) -> EncodedImage:
    """Decoded frame -> JPEG of at most ``max_width`` pixels wide."""
    return encode_bgr(to_bgr(frame), quality, max_width)
