"""Frame messages in, Detections records out: validation, image decoding, record building.

Everything a bad frame can do wrong ends as a ``DecodeError`` whose ``reason`` goes to the
dead-letter headers: ``corrupt`` / ``unknown_schema`` / ``wrong_record`` (Avro),
``input_limit`` (message bytes, declared or actual pixel size), ``bad_image`` (JPEG that
does not decode), ``size_mismatch`` (the JPEG header or decoded size differs from the declared one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.codec import FRAME, Codec
from pipeline.detections import Detections
from pipeline.exceptions import DecodeError, InputLimitError
from pipeline.inference.offsets import Token

Headers = list[tuple[str, bytes]] | None


@dataclass(frozen=True)
class FrameLimits:
    """Input limits from ``InferenceConfig`` (checked before any big allocation)."""

    max_frame_bytes: int
    max_width: int
    max_height: int

    @property
    def max_pixels(self) -> int:
        return self.max_width * self.max_height


@dataclass
class FrameItem:
    """One polled frame on its way through the worker."""

    token: Token
    key: bytes | None
    headers: Headers
    value: bytes  # the message as polled, for the dead-letter topic
    frame: dict[str, Any]
    polled_ms: int  # monotonic clock, for queue-wait statistics

    @property
    def end_of_stream(self) -> bool:
        """An end-of-stream marker: no image, passed through as Detections without boxes."""
        return bool(self.frame.get("end_of_stream", False))


def parse_frame(value: bytes | None, codec: Codec, limits: FrameLimits) -> dict[str, Any]:
    """A Kafka value to a validated Frame record, or ``DecodeError`` saying why not."""
    if value is None:
        raise DecodeError("frame message has no value", reason="corrupt")
    if len(value) > limits.max_frame_bytes:
        raise InputLimitError(
            f"frame message of {len(value)} bytes exceeds max_frame_bytes={limits.max_frame_bytes}"
        )
    frame = codec.decode_as(value, FRAME)
    if frame.get("end_of_stream", False):
        return frame
    width, height = frame["width"], frame["height"]
    if width <= 0 or height <= 0:
        raise DecodeError(f"frame declares a size of {width}x{height}", reason="size_mismatch")
    if width > limits.max_width or height > limits.max_height:
        raise InputLimitError(
            f"frame of {width}x{height} exceeds the limit {limits.max_width}x{limits.max_height}"
        )
    from pipeline.inference.preprocess import jpeg_size  # OpenCV: only where images are

    # The JPEG header's size, read without decoding: a frame lying about its size is refused
    # here, before it takes a batch slot and ~5 ms of decoding (a flood of them would).
    size = jpeg_size(frame["data"])
    if size is not None and size != (height, width):
        raise DecodeError(f"image is {size[1]}x{size[0]}, the frame declares {width}x{height}",
                          reason="size_mismatch")
    return frame


def decode_frame_image(frame: dict[str, Any], limits: FrameLimits) -> np.ndarray:
    """The frame's JPEG as BGR pixels, checked against its declared size."""
    from pipeline.inference.preprocess import decode_image  # OpenCV: only where images are

    image = decode_image(frame["data"], max_pixels=limits.max_pixels)
    height, width = image.shape[:2]
    if (width, height) != (frame["width"], frame["height"]):
        raise DecodeError(
            f"image is {width}x{height}, the frame declares {frame['width']}x{frame['height']}",
            reason="size_mismatch",
        )
    return image


def detections_record(
    frame: dict[str, Any],
    detections: Detections,
    model: tuple[str, str],
    inference_ms: float,
    batch_size: int,
) -> dict[str, Any]:
    """The Avro ``Detections`` record for one frame (boxes already normalised to 0..1)."""
    record = {
        "camera_id": frame["camera_id"],
        "stream_id": frame["stream_id"],
        "seq": frame["seq"],
        "capture_ts_ms": frame["capture_ts_ms"],
        "width": frame["width"],
        "height": frame["height"],
        "model_name": model[0],
        "model_version": model[1],
        "inference_ms": float(inference_ms),
        "batch_size": batch_size,
        "boxes": boxes(detections),
    }
    if frame.get("end_of_stream", False):
        record["end_of_stream"] = True
    return record


def boxes(detections: Detections) -> list[dict[str, Any]]:
    xyxy: Sequence[Sequence[float]] = detections.xyxy.tolist()
    return [
        {"class_id": c, "score": s, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
        for c, s, b in zip(detections.class_ids.tolist(), detections.scores.tolist(), xyxy)
    ]


def trace_headers(headers: Headers) -> Headers:
    """Headers carried from a frame to its detections (the trace context)."""
    kept = [(k, v) for k, v in headers or () if k == "traceparent" and v is not None]
    return kept or None
