"""Frame decoding and YOLOX letterboxing, writing straight into a batch tensor.

The heavy work is done by libjpeg-turbo (decode), OpenCV (resize, colour
conversion) and numpy casting copies, which release the GIL, so a thread pool overlaps
letterboxing of one batch with the model run of another. Each frame is
written into its row of a preallocated ``(n, 3, H, W)`` float32 buffer: no
per-frame tensor is allocated and no final ``np.stack`` copy is needed.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Sequence

import cv2
import numpy as np
import simplejpeg

from pipeline.exceptions import DecodeError, InputLimitError
from pipeline.inference.base import FrameMeta

DEFAULT_MAX_PIXELS = 8192 * 8192
_JPEG_MAGIC = b"\xff\xd8"


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's headers without decoding; None if not readable.

    Lets ``decode_image`` refuse a decompression bomb before allocating it.
    """
    if not data.startswith(_JPEG_MAGIC):
        return None
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return height, width


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes (JPEG, or PNG for the serving API) to a BGR uint8 ``(h, w, 3)`` array.

    JPEGs go through libjpeg-turbo's TurboJPEG API (simplejpeg): the same pixels as
    ``cv2.imdecode`` at well under half its CPU time (``bench/bench_decode.py``), which on a
    CPU host is time taken from the model. What it refuses (CMYK, odd layouts) is left to
    OpenCV. Raises ``DecodeError(reason='bad_image')`` for bytes neither can decode and
    ``InputLimitError`` for a JPEG declaring more than ``max_pixels`` pixels.
    """
    size = jpeg_size(data)
    if size is not None:
        if size[0] * size[1] > max_pixels:
            raise InputLimitError(
                f"image {size[1]}x{size[0]} exceeds the limit of {max_pixels} pixels"
            )
        try:
            return simplejpeg.decode_jpeg(data, colorspace="BGR")
        except ValueError:
            pass  # OpenCV decodes what TurboJPEG refuses, or says it is corrupt
    buffer = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    except cv2.error as exc:
        raise DecodeError(f"image could not be decoded: {exc}", "bad_image") from exc
    if image is None:
        raise DecodeError(
            f"image could not be decoded ({len(data)} bytes)", reason="bad_image"
        )
    return image


def letterbox_ratio(height: int, width: int, target_h: int, target_w: int) -> float:
    """Scale that fits the frame inside the target keeping its aspect ratio."""
    return min(target_h / height, target_w / width)


def letterbox_into(
    image: np.ndarray,
    out: np.ndarray,
    pad_value: float = 114.0,
    swap_rb: bool = False,
    scale: float = 1.0,
) -> FrameMeta:
    """Letterbox one BGR frame into ``out`` ``(3, H, W)`` float32, YOLOX style.

    Resize by ``r = min(H/h, W/w)`` to ``(int(w*r), int(h*r))`` with bilinear
    interpolation, paste at the top-left (so decoding only divides by ``r``),
    pad the rest with ``pad_value``, HWC to CHW, then multiply by ``scale``
    (1.0 = raw 0..255). A side that would round to 0 px is kept at 1 px.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a (h, w, 3) uint8 BGR image, got {image.shape}")
    height, width = image.shape[:2]
    _, target_h, target_w = out.shape
    ratio = letterbox_ratio(height, width, target_h, target_w)
    new_h, new_w = max(1, int(height * ratio)), max(1, int(width * ratio))
    resized = image
    if (new_h, new_w) != (height, width):
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if swap_rb:
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    out[:, new_h:, :] = pad_value
    out[:, :new_h, new_w:] = pad_value
    out[:, :new_h, :new_w] = resized.transpose(2, 0, 1)
    if scale != 1.0:
        out *= scale
    return FrameMeta(ratio, height, width)


def letterbox(
    image: np.ndarray, size_hw: tuple[int, int] = (416, 416), pad_value: float = 114.0
) -> tuple[np.ndarray, float]:
    """One frame as a fresh ``(3, H, W)`` float32 tensor and its scale ``r``."""
    out = np.empty((3, *size_hw), np.float32)
    meta = letterbox_into(image, out, pad_value)
    return out, meta.ratio


def letterbox_batch(
    images: Sequence[np.ndarray],
    out: np.ndarray,
    executor: Executor | None = None,
    **options: float | bool,
) -> tuple[FrameMeta, ...]:
    """Letterbox ``images`` into rows ``out[0:n]``, in parallel when given an executor."""
    if len(images) > len(out):
        raise ValueError(f"{len(images)} images do not fit a buffer of {len(out)}")
    if executor is None or len(images) < 2:
        return tuple(letterbox_into(im, out[i], **options) for i, im in enumerate(images))
    futures = [
        executor.submit(letterbox_into, im, out[i], **options)
        for i, im in enumerate(images)
    ]
    return tuple(future.result() for future in futures)
