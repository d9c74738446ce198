"""What a detector looks like through the protocol: its inputs, outputs and metadata.

One image per request, in one of two inputs (exactly one of them):

- ``image``: BYTES ``[1]``, a JPEG or PNG file. With the binary data extension the raw
  file bytes; in JSON, the file base64-encoded (JSON strings cannot hold raw bytes).
- ``image_bgr``: UINT8 ``[H, W, 3]`` (or ``[1, H, W, 3]``) decoded pixels, channels in
  **BGR** order (OpenCV's; a PyAV ``bgr24`` frame as is).

Outputs, for the ``N`` detections of that image after NMS:

- ``boxes``: FP32 ``[N, 4]``, ``x1, y1, x2, y2`` in pixels of the input image.
- ``scores``: FP32 ``[N]``; ``class_ids``: INT32 ``[N]``; ``class_names``: BYTES ``[N]``.

Several images go as several requests (concurrently): the server batches them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.detections import Detections
from pipeline.exceptions import DecodeError, InputLimitError
from pipeline.serving.exceptions import BadRequest, PayloadTooLarge
from pipeline.serving.protocol import InferRequest, Tensor

IMAGE, IMAGE_BGR = "image", "image_bgr"
BOXES, SCORES, CLASS_IDS, CLASS_NAMES = "boxes", "scores", "class_ids", "class_names"
OUTPUT_DATATYPES = {BOXES: "FP32", SCORES: "FP32", CLASS_IDS: "INT32", CLASS_NAMES: "BYTES"}
_JPEG_MAGIC, _PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageLimits:
    max_width: int
    max_height: int

    def check(self, width: int, height: int) -> None:
        if width > self.max_width or height > self.max_height:
            raise PayloadTooLarge(
                f"image of {width}x{height} pixels exceeds the limit of "
                f"{self.max_width}x{self.max_height}"
            )


def model_metadata(name: str, versions: Sequence[str], limits: ImageLimits) -> dict[str, Any]:
    """The protocol's model metadata response, with our conventions in ``parameters``."""
    return {
        "name": name,
        "versions": list(versions),
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": IMAGE, "datatype": "BYTES", "shape": [1]},
            {"name": IMAGE_BGR, "datatype": "UINT8", "shape": [-1, -1, 3]},
        ],
        "outputs": [
            {"name": BOXES, "datatype": "FP32", "shape": [-1, 4]},
            {"name": SCORES, "datatype": "FP32", "shape": [-1]},
            {"name": CLASS_IDS, "datatype": "INT32", "shape": [-1]},
            {"name": CLASS_NAMES, "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "inputs": f"send exactly one: {IMAGE!r} (a JPEG or PNG; base64 in JSON) or "
            f"{IMAGE_BGR!r} (uint8 pixels, BGR channel order)",
            "boxes": "x1, y1, x2, y2 in pixels of the input image",
            "max_width": limits.max_width,
            "max_height": limits.max_height,
        },
    }


def image_from_request(request: InferRequest, limits: ImageLimits) -> np.ndarray:
    """The request's one image as BGR uint8 ``(h, w, 3)``; 400/413 saying what is wrong."""
    unknown = [t.name for t in request.inputs if t.name not in (IMAGE, IMAGE_BGR)]
    if unknown:
        raise BadRequest(
            f"unknown input {unknown[0]!r}: this model takes {IMAGE!r} (BYTES, a JPEG or PNG) "
            f"or {IMAGE_BGR!r} (UINT8 [H, W, 3], BGR)"
        )
    if len(request.inputs) != 1:
        raise BadRequest(f"send exactly one of {IMAGE!r} or {IMAGE_BGR!r}, not both")
    tensor = request.inputs[0]
    if tensor.name == IMAGE:
        return _decode_encoded(tensor, limits)
    return _raw_pixels(tensor, limits)


def _decode_encoded(tensor: Tensor, limits: ImageLimits) -> np.ndarray:
    if tensor.datatype != "BYTES":
        raise BadRequest(
            f"input {IMAGE!r} must be BYTES (a JPEG or PNG file), got {tensor.datatype}; "
            f"send decoded pixels as {IMAGE_BGR!r} (UINT8 [H, W, 3])"
        )
    if tensor.data.size != 1:
        raise BadRequest(
            f"input {IMAGE!r} must have shape [1] (one image per request), got {list(tensor.shape)}"
        )
    data = tensor.data.reshape(-1)[0]
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(
                f"input {IMAGE!r}: BYTES sent as JSON must be the image base64-encoded "
                "(or send it as binary data)"
            ) from None
    size = encoded_size(data)
    if size is None:
        raise BadRequest(f"input {IMAGE!r} is not a JPEG or PNG file ({len(data)} bytes)")
    if size != (0, 0):
        limits.check(*size)
    from pipeline.inference.preprocess import decode_image  # OpenCV: only where images are

    try:
        image = decode_image(data, max_pixels=limits.max_width * limits.max_height)
    except InputLimitError as exc:
        raise PayloadTooLarge(f"input {IMAGE!r}: {exc}") from None
    except DecodeError as exc:
        raise BadRequest(f"input {IMAGE!r}: {exc} (corrupt or truncated file?)") from None
    limits.check(image.shape[1], image.shape[0])
    return image


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` a JPEG or PNG declares, ``(0, 0)`` for a JPEG whose size is not
    found before decoding; None for anything else (only these two formats are decoded)."""
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return 0, 0  # let the decoder say it is corrupt
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_JPEG_MAGIC):
        from pipeline.inference.preprocess import jpeg_size

        size = jpeg_size(data)
        return (0, 0) if size is None else (size[1], size[0])
    return None


def _raw_pixels(tensor: Tensor, limits: ImageLimits) -> np.ndarray:
    if tensor.datatype != "UINT8":
        raise BadRequest(f"input {IMAGE_BGR!r} must be UINT8, got {tensor.datatype}")
    shape = tensor.shape[1:] if len(tensor.shape) == 4 and tensor.shape[0] == 1 else tensor.shape
    if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        raise BadRequest(
            f"input {IMAGE_BGR!r} must have shape [H, W, 3] (or [1, H, W, 3]), "
            f"got {list(tensor.shape)}"
        )
    limits.check(shape[1], shape[0])
    return tensor.data.reshape(shape)


def detection_outputs(
    detections: Detections, height: int, width: int, class_names: Sequence[str]
) -> dict[str, Tensor]:
    """Detections of one image as output tensors, boxes scaled to its pixels."""
    n = len(detections)
    scale = np.array([width, height, width, height], np.float32)
    boxes = (detections.xyxy * scale).astype(np.float32)
    names = np.empty(n, dtype=object)
    names[:] = [class_names[c].encode() for c in detections.class_ids.tolist()]
    return {
        BOXES: Tensor(BOXES, "FP32", (n, 4), boxes),
        SCORES: Tensor(SCORES, "FP32", (n,), detections.scores.astype(np.float32)),
        CLASS_IDS: Tensor(CLASS_IDS, "INT32", (n,), detections.class_ids.astype(np.int32)),
        CLASS_NAMES: Tensor(CLASS_NAMES, "BYTES", (n,), names),
    }


def check_outputs(request: InferRequest) -> None:
    """400 for a requested output this model does not have."""
    for wanted in request.outputs or ():
        if wanted.name not in OUTPUT_DATATYPES:
            raise BadRequest(f"unknown output {wanted.name!r} (outputs: {', '.join(OUTPUT_DATATYPES)})")


def select_outputs(tensors: dict[str, Tensor], request: InferRequest) -> list[tuple[Tensor, bool]]:
    """The outputs the request asked for, in its order, each with its binary flag."""
    if request.outputs is None:
        return [(tensor, request.binary_output) for tensor in tensors.values()]
    selected = []
    for wanted in request.outputs:
        if wanted.name not in tensors:
            raise BadRequest(f"unknown output {wanted.name!r} (outputs: {', '.join(tensors)})")
        selected.append((tensors[wanted.name], wanted.binary))
    return selected
