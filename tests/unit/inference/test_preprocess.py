"""Letterbox maths and image decoding against YOLOX's own ``preproc``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from pipeline.exceptions import DecodeError, InputLimitError
from pipeline.inference.preprocess import (
    decode_image,
    jpeg_size,
    letterbox,
    letterbox_batch,
    letterbox_into,
)


def yolox_preproc(img: np.ndarray, input_size=(416, 416)) -> tuple[np.ndarray, float]:
    """YOLOX >= 0.1.1 ``yolox/data/data_augment.py`` ``preproc``, as reference."""
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized = cv2.resize(
        img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR
    ).astype(np.uint8)
    padded[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


@pytest.mark.parametrize(
    "height, width, ratio, content_hw",
    [
        (576, 768, 416 / 768, (312, 416)),  # pets09, landscape 4:3
        (1080, 1920, 416 / 1920, (234, 416)),  # 16:9
        (800, 400, 416 / 800, (416, 208)),  # portrait
        (416, 416, 1.0, (416, 416)),  # already model size: no resize
        (100, 200, 416 / 200, (208, 416)),  # upscaled
    ],
)
def test_letterbox_matches_yolox_preproc(height, width, ratio, content_hw):
    image = random_image(height, width)
    tensor, r = letterbox(image)
    expected, expected_r = yolox_preproc(image)
    assert r == pytest.approx(ratio) and r == expected_r
    assert tensor.dtype == np.float32 and tensor.shape == (3, 416, 416)
    np.testing.assert_array_equal(tensor, expected)
    h, w = content_hw
    assert (tensor[:, h:, :] == 114).all() and (tensor[:, :, w:] == 114).all()


def test_letterbox_is_raw_bgr_chw():
    image = np.zeros((416, 416, 3), np.uint8)
    image[..., 0], image[..., 2] = 255, 7  # blue 255, red 7
    tensor, _ = letterbox(image)
    assert tensor[0].max() == 255.0 and tensor[2].max() == 7.0  # no /255, no swap


def test_letterbox_options_swap_and_scale():
    image = np.zeros((416, 416, 3), np.uint8)
    image[..., 0] = 255
    out = np.empty((3, 416, 416), np.float32)
    letterbox_into(image, out, swap_rb=True, scale=1 / 255)
    assert out[2].max() == pytest.approx(1.0) and out[0].max() == 0.0


def test_letterbox_into_writes_only_its_row():
    out = np.full((3, 3, 416, 416), -1.0, np.float32)
    meta = letterbox_into(random_image(576, 768), out[1])
    assert (meta.height, meta.width) == (576, 768)
    assert (out[0] == -1).all() and (out[2] == -1).all() and (out[1] >= 0).all()


def test_letterbox_batch_in_a_thread_pool_equals_serial():
    images = [random_image(576, 768, seed) for seed in range(6)]
    serial = np.empty((8, 3, 416, 416), np.float32)
    pooled = np.empty((8, 3, 416, 416), np.float32)
    metas = letterbox_batch(images, serial)
    with ThreadPoolExecutor(3) as pool:
        assert letterbox_batch(images, pooled, pool) == metas
    np.testing.assert_array_equal(serial[:6], pooled[:6])


def test_letterbox_refuses_wrong_images():
    out = np.empty((3, 416, 416), np.float32)
    with pytest.raises(ValueError, match="uint8 BGR"):
        letterbox_into(np.zeros((10, 10), np.uint8), out)
    with pytest.raises(ValueError, match="do not fit"):
        letterbox_batch([random_image(4, 4)] * 2, out[None])


def test_extreme_aspect_ratio_keeps_one_pixel():
    tensor, _ = letterbox(random_image(1, 2000))
    assert tensor.shape == (3, 416, 416)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def test_decode_image_round_trip():
    image = random_image(48, 64)
    decoded = decode_image(encode_jpeg(image))
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    assert jpeg_size(encode_jpeg(image)) == (48, 64)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty message
        b"not an image at all",
        b"\xff\xd8\xff\xe0" + b"\x00" * 40,  # JPEG start, nothing decodable
    ],
)
def test_undecodable_bytes_are_bad_image(data):
    with pytest.raises(DecodeError) as info:
        decode_image(data)
    assert info.value.reason == "bad_image"


def test_jpeg_cut_inside_its_headers_is_bad_image():
    data = encode_jpeg(random_image(64, 64))
    with pytest.raises(DecodeError) as info:
        decode_image(data[:200])
    assert info.value.reason == "bad_image"


def test_oversized_jpeg_header_is_refused_before_decoding():
    data = bytearray(encode_jpeg(random_image(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    assert jpeg_size(bytes(data)) == (60000, 60000)
    with pytest.raises(InputLimitError) as info:
        decode_image(bytes(data))
    assert info.value.reason == "input_limit"
