"""Open Inference Protocol v2 (REST) tensors on the wire: parse requests, encode responses.

Pure functions, no I/O. Both encodings of the protocol are understood:

- JSON: tensor elements in ``data``, a flat or nested list in row-major order.
- Binary tensor data extension (Triton, used by ``tritonclient[http]``): the JSON header
  is the first ``Inference-Header-Content-Length`` bytes of the body; each tensor with a
  ``parameters.binary_data_size`` takes that many raw little-endian bytes from the rest,
  in the order of the tensors. A BYTES element is a 4-byte little-endian length followed
  by its bytes.

What the tensors mean (which inputs a model takes) is ``pipeline.serving.contract``'s job.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.serving.exceptions import BadRequest

#: Protocol datatype -> numpy dtype (little-endian, as the binary extension sends them).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = frozenset(NUMPY_DTYPES) | {"BYTES"}


@dataclass(frozen=True)
class Tensor:
    """A named tensor. For BYTES, ``data`` is an object array of ``bytes`` (binary data)
    or ``str`` (JSON), exactly as received; otherwise a numeric array of ``shape``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """``outputs`` None means every output, each binary when ``binary_output``."""

    id: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] | None
    binary_output: bool


def parse_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """The request body (and ``Inference-Header-Content-Length``, if sent) as tensors.

    Raises ``BadRequest`` saying what is wrong: not JSON, a missing key, an unknown
    datatype, data that does not fill the shape, binary sizes that do not add up.
    """
    if header_length is None:
        header_bytes, tail = body, b""
    else:
        if header_length < 0 or header_length > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes"
            )
        header_bytes, tail = body[:header_length], body[header_length:]
    header = _load_json(header_bytes)
    params = _mapping(header.get("parameters", {}), "parameters")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the request needs a non-empty 'inputs' list")
    offset = 0
    inputs = []
    for index, raw in enumerate(raw_inputs):
        tensor, used = _parse_input(_mapping(raw, f"inputs[{index}]"), index, tail, offset)
        inputs.append(tensor)
        offset += used
    if offset != len(tail):
        raise BadRequest(
            f"{len(tail) - offset} bytes of binary data follow the header that no input claims"
        )
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):
        raise BadRequest(f"input names repeat: {names}")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")
    outputs = None
    if "outputs" in header:
        outputs = _parse_outputs(header["outputs"], binary_output)
    return InferRequest(request_id, tuple(inputs), outputs, binary_output)


def _load_json(data: bytes) -> dict[str, Any]:
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the request header is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("the request header nests too deeply") from None
    return _mapping(header, "the request")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def _parse_input(raw: dict[str, Any], index: int, tail: bytes, offset: int) -> tuple[Tensor, int]:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}] needs a 'name'")
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r} (one of {sorted(DATATYPES)})")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    shape_t = tuple(shape)
    params = _mapping(raw.get("parameters", {}), f"input {name!r} parameters")
    if "shared_memory_region" in params:
        raise BadRequest(f"input {name!r}: shared memory is not supported by this server")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"input {name!r}: binary_data_size must be a non-negative integer")
        if "data" in raw:
            raise BadRequest(f"input {name!r}: give 'data' or binary_data_size, not both")
        if offset + size > len(tail):
            raise BadRequest(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(tail) - offset} bytes left)"
            )
        chunk = tail[offset : offset + size]
        return Tensor(name, datatype, shape_t, _from_binary(name, datatype, shape_t, chunk)), size
    if "data" not in raw:
        raise BadRequest(f"input {name!r} has neither 'data' nor binary_data_size")
    return Tensor(name, datatype, shape_t, _from_json(name, datatype, shape_t, raw["data"])), 0


def element_count(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _from_binary(name: str, datatype: str, shape: tuple[int, ...], chunk: bytes) -> np.ndarray:
    count = element_count(shape)
    if datatype == "BYTES":
        items = deserialize_bytes_tensor(chunk, name)
        if len(items) != count:
            raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} elements, got {len(items)}")
        return _object_array(items, shape)
    dtype = NUMPY_DTYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise BadRequest(
            f"input {name!r}: shape {list(shape)} of {datatype} is {count * dtype.itemsize} "
            f"bytes, binary_data_size says {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype).reshape(shape)


def _from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    count = element_count(shape)
    if datatype == "BYTES":
        items = _flatten(data)
        if not all(isinstance(item, str) for item in items):
            raise BadRequest(f"input {name!r}: BYTES elements in JSON must be strings")
        if len(items) != count:
            raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} elements, got {len(items)}")
        return _object_array(items, shape)
    dtype = NUMPY_DTYPES[datatype]
    try:
        array = np.asarray(data)
    except (ValueError, RecursionError):
        raise BadRequest(f"input {name!r}: 'data' is not a regular array") from None
    if array.size != count:
        raise BadRequest(f"input {name!r}: shape {list(shape)} needs {count} elements, got {array.size}")
    if count and not _fits(array, dtype):
        raise BadRequest(f"input {name!r}: 'data' holds values that are not {datatype}")
    return array.astype(dtype).reshape(shape)


def _flatten(data: Any) -> list[Any]:
    """Elements of a nested list in row-major order (iterative: any depth is safe)."""
    out: list[Any] = []
    stack = [iter([data])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            out.append(item)
    return out


_END = object()


def _fits(array: np.ndarray, dtype: np.dtype) -> bool:
    """Whether JSON numbers parsed into ``array`` are valid values of ``dtype``."""
    kind = array.dtype.kind
    if dtype.kind == "b":
        return kind == "b"
    if dtype.kind in "iu":
        if kind not in "iu":
            return False
        info = np.iinfo(dtype)
        return bool(array.min() >= info.min and array.max() <= info.max)
    return kind in "iuf"


def _object_array(items: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def deserialize_bytes_tensor(chunk: bytes, name: str = "tensor") -> list[bytes]:
    """Length-prefixed BYTES elements (4-byte little-endian length, then the bytes)."""
    items, i = [], 0
    view = memoryview(chunk)
    while i < len(chunk):
        if i + 4 > len(chunk):
            raise BadRequest(f"input {name!r}: BYTES data ends inside an element length")
        (length,) = struct.unpack_from("<I", chunk, i)
        if i + 4 + length > len(chunk):
            raise BadRequest(f"input {name!r}: a BYTES element of {length} bytes runs past its data")
        items.append(bytes(view[i + 4 : i + 4 + length]))
        i += 4 + length
    return items


def serialize_bytes_tensor(items: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def _parse_outputs(raw: Any, binary_default: bool) -> tuple[RequestedOutput, ...]:
    if not isinstance(raw, list):
        raise BadRequest("'outputs' must be a list")
    outputs = []
    for index, item in enumerate(raw):
        item = _mapping(item, f"outputs[{index}]")
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"outputs[{index}] needs a 'name'")
        params = _mapping(item.get("parameters", {}), f"output {name!r} parameters")
        if "classification" in params or "shared_memory_region" in params:
            raise BadRequest(f"output {name!r}: classification and shared memory are not supported")
        binary = params.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequest(f"output {name!r}: binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary))
    return tuple(outputs)


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[Tensor, bool]],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header length when any output is binary.

    ``outputs`` pairs each tensor with whether to send it as binary data.
    """
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        header["id"] = request_id
    entries, chunks = [], []
    for tensor, binary in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if binary:
            raw = (
                serialize_bytes_tensor(list(tensor.data.reshape(-1)))
                if tensor.datatype == "BYTES"
                else np.ascontiguousarray(tensor.data, NUMPY_DTYPES[tensor.datatype]).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif tensor.datatype == "BYTES":
            entry["data"] = [item.decode("utf-8") for item in tensor.data.reshape(-1)]
        else:
            entry["data"] = tensor.data.reshape(-1).tolist()
        entries.append(entry)
    header["outputs"] = entries
    body = json.dumps(header, separators=(",", ":")).encode()
    if not chunks:
        return body, None
    return body + b"".join(chunks), len(body)


def error_body(message: str) -> bytes:
    """The protocol's error response: ``{"error": "<message>"}``."""
    return json.dumps({"error": message}).encode()
