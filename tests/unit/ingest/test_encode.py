from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from pipeline.ingest.encode import encode_bgr, encode_frame, scaled_size, to_bgr


@pytest.fixture(scope="module")
def pets09_frame(pets09) -> av.VideoFrame:
    with av.open(str(pets09)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == 100:
                return frame
    raise AssertionError("pets09 has fewer than 101 frames")


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [
        ((768, 576), None, (768, 576)),  # no limit
        ((768, 576), 1024, (768, 576)),  # never upscaled
        ((768, 576), 768, (768, 576)),  # exactly the limit
        ((768, 576), 320, (320, 240)),  # 4:3 kept
        ((640, 352), 320, (320, 176)),  # street clip, halved
        ((1920, 1080), 640, (640, 360)),  # 16:9
        ((1000, 3), 100, (100, 2)),  # never below 2 px high
        ((641, 361), 320, (320, 180)),  # odd sizes: even height
    ],
)
def test_scaled_size(size, max_width, expected):
    assert scaled_size(*size, max_width) == expected


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_fast_yuv420p_path_matches_ffmpeg_conversion(pets09_frame):
    assert pets09_frame.format.name == "yuv420p"
    fast = to_bgr(pets09_frame)
    reference = pets09_frame.to_ndarray(format="bgr24")
    assert fast.shape == reference.shape == (576, 768, 3)
    assert psnr(fast, reference) > 35


def test_jpeg_round_trip_keeps_the_picture(pets09_frame):
    image = encode_frame(pets09_frame, quality=85)
    assert (image.width, image.height) == (768, 576)
    assert image.data[:2] == b"\xff\xd8"  # JPEG start-of-image
    decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (576, 768, 3)
    assert psnr(decoded, to_bgr(pets09_frame)) > 30


def test_downscale_to_max_width(pets09_frame):
    image = encode_frame(pets09_frame, quality=85, max_width=320)
    decoded = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert (image.width, image.height) == (320, 240) and decoded.shape == (240, 320, 3)


def test_quality_trades_bytes_for_detail(pets09_frame):
    bgr = to_bgr(pets09_frame)
    low, high = encode_bgr(bgr, 30), encode_bgr(bgr, 95)
    assert len(low.data) < len(high.data) / 2
    as_array = lambda img: cv2.imdecode(np.frombuffer(img.data, np.uint8), cv2.IMREAD_COLOR)  # noqa: E731
    assert psnr(as_array(high), bgr) > psnr(as_array(low), bgr) + 3


def test_other_pixel_formats_go_through_swscale(pets09_frame):
    rgb_frame = pets09_frame.reformat(format="rgb24")
    bgr = to_bgr(rgb_frame)
    assert bgr.shape == (576, 768, 3)
    assert psnr(bgr, to_bgr(pets09_frame)) > 35
