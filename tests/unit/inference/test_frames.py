"""parse_frame: what the poll thread refuses before a frame takes a batch slot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.codec import FRAME, default_codec
from pipeline.exceptions import DecodeError
from pipeline.inference.frames import FrameLimits, parse_frame

LIMITS = FrameLimits(max_frame_bytes=1_000_000, max_width=1920, max_height=1080)
JPEG_48x32 = cv2.imencode(".jpg", np.zeros((32, 48, 3), np.uint8))[1].tobytes()


def _value(data: bytes, width: int, height: int) -> bytes:
    return default_codec().encode(FRAME, dict(camera_id="cam", stream_id="s", seq=0, capture_ts_ms=0,
                                              width=width, height=height, data=data))


@pytest.mark.parametrize("data, width, height, reason", [
    (JPEG_48x32, 48, 32, None),                    # header agrees: on to the batcher
    (JPEG_48x32, 32, 48, "size_mismatch"),         # width and height swapped
    (JPEG_48x32, 640, 480, "size_mismatch"),       # a real JPEG lying about its size
    (b"\xff\xd8 not a jpeg", 48, 32, None),        # no readable header: the decoder judges it
])
def test_declared_size_is_checked_against_the_jpeg_header(data: bytes, width: int, height: int,
                                                          reason: str | None) -> None:
    if reason is None:
        assert parse_frame(_value(data, width, height), default_codec(), LIMITS)["width"] == width
    else:
        with pytest.raises(DecodeError) as info:
            parse_frame(_value(data, width, height), default_codec(), LIMITS)
        assert info.value.reason == reason
