"""OIP v2 tensors on the wire: JSON and the binary data extension, both directions."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from pipeline.serving.exceptions import BadRequest
from pipeline.serving.protocol import (
    Tensor,
    deserialize_bytes_tensor,
    encode_infer_response,
    parse_infer_request,
    serialize_bytes_tensor,
)


def binary_body(header: dict, *chunks: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), len(head)


def test_json_numeric_input_nested_or_flat() -> None:
    for data in ([[1, 2, 3], [4, 5, 6]], [1, 2, 3, 4, 5, 6]):
        body = json.dumps({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [2, 3], "data": data}]})
        request = parse_infer_request(body.encode())
        np.testing.assert_array_equal(request.inputs[0].data, [[1, 2, 3], [4, 5, 6]])
        assert request.inputs[0].data.dtype == np.uint8 and request.outputs is None


def test_binary_inputs_are_taken_in_order() -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    blob = serialize_bytes_tensor([b"\xff\xd8jpeg"])
    body, length = binary_body({
        "id": "r1",
        "inputs": [
            {"name": "a", "datatype": "UINT8", "shape": [2, 2, 3], "parameters": {"binary_data_size": 12}},
            {"name": "b", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(blob)}},
        ],
        "outputs": [{"name": "boxes", "parameters": {"binary_data": True}}, {"name": "scores"}],
    }, pixels.tobytes(), blob)
    request = parse_infer_request(body, length)
    np.testing.assert_array_equal(request.inputs[0].data, pixels)
    assert request.inputs[1].data.tolist() == [b"\xff\xd8jpeg"] and request.id == "r1"
    assert [(o.name, o.binary) for o in request.outputs] == [("boxes", True), ("scores", False)]


def test_bytes_tensor_round_trip() -> None:
    items = [b"", b"abc", bytes(range(256))]
    assert deserialize_bytes_tensor(serialize_bytes_tensor(items)) == items


def _input(**overrides) -> dict:
    return {"name": "x", "datatype": "UINT8", "shape": [2], "data": [1, 2], **overrides}


@pytest.mark.parametrize("header, body_tail, length_delta, expectation, words", [
    # not JSON
    (None, b"", 0, pytest.raises(BadRequest), "not valid JSON"),
    # no inputs
    ({"inputs": []}, b"", 0, pytest.raises(BadRequest), "non-empty 'inputs'"),
    # a datatype the protocol does not have
    ({"inputs": [_input(datatype="FLOAT")]}, b"", 0, pytest.raises(BadRequest), "unknown datatype"),
    # negative dimension
    ({"inputs": [_input(shape=[-1])]}, b"", 0, pytest.raises(BadRequest), "non-negative"),
    # too few elements for the shape
    ({"inputs": [_input(shape=[3])]}, b"", 0, pytest.raises(BadRequest), "needs 3 elements, got 2"),
    # a value outside UINT8
    ({"inputs": [_input(data=[1, 300])]}, b"", 0, pytest.raises(BadRequest), "not UINT8"),
    # floats for an integer type
    ({"inputs": [_input(data=[1.5, 2])]}, b"", 0, pytest.raises(BadRequest), "not UINT8"),
    # ragged nested data
    ({"inputs": [_input(shape=[2, 2], data=[[1, 2], [3]])]}, b"", 0, pytest.raises(BadRequest), "regular"),
    # binary size larger than the body
    ({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [4], "parameters": {"binary_data_size": 4}}]},
     b"\x00\x00", 0, pytest.raises(BadRequest), "runs past the end"),
    # binary bytes that no input claims
    ({"inputs": [_input()]}, b"\x00", 0, pytest.raises(BadRequest), "no input claims"),
    # binary size that does not match the shape
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 4}}]},
     b"\x00" * 4, 0, pytest.raises(BadRequest), "is 8 bytes"),
    # header length beyond the body
    ({"inputs": [_input()]}, b"", 1000, pytest.raises(BadRequest), "Inference-Header-Content-Length"),
    # shared memory
    ({"inputs": [_input(parameters={"shared_memory_region": "r"})]}, b"", 0, pytest.raises(BadRequest),
     "shared memory"),
    # the same input twice
    ({"inputs": [_input(), _input()]}, b"", 0, pytest.raises(BadRequest), "repeat"),
    # a valid request
    ({"inputs": [_input()]}, b"", 0, does_not_raise(), None),
])
def test_malformed_requests(header, body_tail, length_delta, expectation, words) -> None:
    head = b"{not json" if header is None else json.dumps(header).encode()
    length = len(head) + length_delta if body_tail or length_delta else None
    with expectation as info:
        parse_infer_request(head + body_tail, length)
    if words:
        assert words in info.value.message


def test_deeply_nested_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_infer_request(b"[" * 100_000 + b"]" * 100_000)


def test_response_json_and_binary() -> None:
    boxes = Tensor("boxes", "FP32", (1, 4), np.array([[1.5, 2, 3, 4]], np.float32))
    names = Tensor("class_names", "BYTES", (1,), np.array([b"person"], dtype=object))
    body, length = encode_infer_response("m", "1", "r1", [(boxes, False), (names, False)])
    assert length is None
    parsed = json.loads(body)
    assert parsed["id"] == "r1" and parsed["outputs"][0]["data"] == [1.5, 2, 3, 4]
    assert parsed["outputs"][1]["data"] == ["person"]
    body, length = encode_infer_response("m", "1", None, [(boxes, True), (names, True)])
    header = json.loads(body[:length])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [16, 10]
    np.testing.assert_array_equal(np.frombuffer(body[length:length + 16], np.float32), [1.5, 2, 3, 4])
    assert deserialize_bytes_tensor(body[length + 16:]) == [b"person"]
