"""The detector's protocol contract: which inputs, limits before decoding, pixel boxes."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from pipeline.detections import Detections
from pipeline.serving.contract import ImageLimits, detection_outputs, encoded_size, image_from_request
from pipeline.serving.exceptions import BadRequest, PayloadTooLarge
from pipeline.serving.protocol import InferRequest, Tensor

LIMITS = ImageLimits(max_width=640, max_height=480)


def request(*tensors: Tensor) -> InferRequest:
    return InferRequest(None, tensors, None, False)


def encoded(data: bytes | str) -> Tensor:
    array = np.empty(1, dtype=object)
    array[0] = data
    return Tensor("image", "BYTES", (1,), array)


def test_jpeg_png_and_base64_decode_to_the_same_pixels() -> None:
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    assert encoded_size(png) == (48, 32)
    np.testing.assert_array_equal(image_from_request(request(encoded(png)), LIMITS), image)
    from_b64 = image_from_request(request(encoded(base64.b64encode(png).decode())), LIMITS)
    np.testing.assert_array_equal(from_b64, image)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    assert encoded_size(jpeg) == (48, 32)
    assert image_from_request(request(encoded(jpeg)), LIMITS).shape == (32, 48, 3)


@pytest.mark.parametrize("tensors, error, words", [
    # both inputs at once
    ((encoded(b""), Tensor("image_bgr", "UINT8", (1, 1, 3), np.zeros((1, 1, 3), np.uint8))), BadRequest, "not both"),
    # unknown input name
    ((Tensor("pixels", "UINT8", (1,), np.zeros(1, np.uint8)),), BadRequest, "unknown input 'pixels'"),
    # JSON string that is not base64
    ((encoded("not base64!"),), BadRequest, "base64"),
    # raw pixels of the wrong type
    ((Tensor("image_bgr", "FP32", (2, 2, 3), np.zeros((2, 2, 3), np.float32)),), BadRequest, "must be UINT8"),
    # raw pixels over the height limit
    ((Tensor("image_bgr", "UINT8", (481, 2, 3), np.zeros((481, 2, 3), np.uint8)),), PayloadTooLarge, "2x481"),
    # a JPEG declaring a size over the limit, refused before decoding
    ((encoded(cv2.imencode(".jpg", np.zeros((500, 10, 3), np.uint8))[1].tobytes()),), PayloadTooLarge, "10x500"),
])
def test_refused_inputs(tensors, error, words) -> None:
    with pytest.raises(error) as info:
        image_from_request(request(*tensors), LIMITS)
    assert words in info.value.message


def test_batched_bgr_shape_is_accepted() -> None:
    pixels = np.zeros((1, 4, 5, 3), np.uint8)
    assert image_from_request(request(Tensor("image_bgr", "UINT8", pixels.shape, pixels)), LIMITS).shape == (4, 5, 3)


def test_boxes_come_back_in_pixels() -> None:
    dets = Detections.from_arrays([[0.5, 0.25, 1.0, 1.0]], [0.9], [1])
    out = detection_outputs(dets, height=400, width=200, class_names=("person", "car"))
    np.testing.assert_allclose(out["boxes"].data, [[100, 100, 200, 400]])
    assert out["class_names"].data.tolist() == [b"car"] and out["class_ids"].data.dtype == np.int32
    empty = detection_outputs(Detections.empty(), 10, 10, ("person",))
    assert empty["boxes"].shape == (0, 4) and empty["class_names"].shape == (0,)
