"""Avro single-object codec: round trips, schema evolution, and every kind of bad input."""

from __future__ import annotations

import copy
import json

import pytest

from pipeline.codec import (
    COUNT_EVENT, DETECTIONS, FRAME, HEADER_BYTES, MAGIC, Codec, default_codec, schema_fingerprint,
)
from pipeline.exceptions import DecodeError, UnknownSchemaError

FRAME_VALUE = dict(camera_id="cam-1", stream_id="s1", seq=7, capture_ts_ms=1_700_000_000_123,
                   width=768, height=576, encoding="jpeg", data=b"\xff\xd8jpeg")


def test_every_record_round_trips() -> None:
    codec = default_codec()
    det = dict(camera_id="c", stream_id="s", seq=1, capture_ts_ms=5, width=10, height=10, model_name="m",
               model_version="1", inference_ms=1.5, batch_size=4,
               boxes=[dict(class_id=0, score=0.5, x1=0.125, y1=0.25, x2=0.375, y2=0.5)])  # float32-exact
    for record, value in [(FRAME, FRAME_VALUE), (DETECTIONS, det)]:
        name, decoded = codec.decode(codec.encode(record, value))
        assert name == record
        assert decoded == decoded | value  # every field written comes back (plus defaults)
        assert decoded["capture_ts_ms"] == value["capture_ts_ms"]  # epoch-ms int, not a datetime


def test_wire_header_is_marker_plus_fingerprint() -> None:
    codec = default_codec()
    data = codec.encode(FRAME, FRAME_VALUE)
    assert data[:2] == MAGIC == b"\xc3\x01"
    schema = json.loads((codec_dir() / "frame.avsc").read_text())
    assert data[2:HEADER_BYTES] == schema_fingerprint(schema)


def codec_dir():
    from pipeline.codec import SCHEMAS_DIR

    return SCHEMAS_DIR


def test_fingerprint_matches_avro_spec_vector() -> None:
    # Avro's share/test/data/schema-tests.txt: "int" has CRC-64-AVRO 8247732601305521295,
    # written little-endian on the wire.
    expected = (8247732601305521295).to_bytes(8, "little")
    assert schema_fingerprint({"type": "record", "name": "X", "fields": []}) != expected
    from fastavro.schema import fingerprint

    assert bytes.fromhex(fingerprint('"int"', "CRC-64-AVRO")) == expected


def _frame_schema() -> dict:
    return json.loads((codec_dir() / "frame.avsc").read_text())


def test_old_writer_is_resolved_against_new_reader() -> None:
    """A consumer with a newer schema (field added with a default) reads old messages."""
    old = _frame_schema()
    new = copy.deepcopy(old)
    new["fields"].append({"name": "exposure_ms", "type": "int", "default": -1})
    old_codec, new_codec = Codec([old]), Codec([new], history=[old])
    name, value = new_codec.decode(old_codec.encode(FRAME, FRAME_VALUE))
    assert name == FRAME and value["exposure_ms"] == -1 and value["seq"] == 7


def test_new_writer_is_read_by_old_reader_that_knows_its_schema() -> None:
    old = _frame_schema()
    new = copy.deepcopy(old)
    new["fields"].append({"name": "exposure_ms", "type": "int", "default": -1})
    writer, reader = Codec([new]), Codec([old], history=[new])
    _, value = reader.decode(writer.encode(FRAME, FRAME_VALUE | {"exposure_ms": 3}))
    assert "exposure_ms" not in value and value["camera_id"] == "cam-1"


@pytest.mark.parametrize(
    "data, error, reason",
    [
        (b"", DecodeError, "corrupt"),  # empty
        (b"\xc3\x01abc", DecodeError, "corrupt"),  # shorter than the header
        (b"\x00\x01" + bytes(8) + b"body", DecodeError, "corrupt"),  # no marker
        (b"\xc3\x01" + bytes(8) + b"body", UnknownSchemaError, "unknown_schema"),  # unknown fingerprint
    ],
)
def test_bad_headers(data: bytes, error: type, reason: str) -> None:
    with pytest.raises(error) as exc:
        default_codec().decode(data)
    assert exc.value.reason == reason


def test_truncated_body_is_corrupt() -> None:
    data = default_codec().encode(FRAME, FRAME_VALUE)
    with pytest.raises(DecodeError, match="corrupt camcount.Frame body") as exc:
        default_codec().decode(data[:-3])
    assert exc.value.reason == "corrupt"


def test_trailing_bytes_are_corrupt() -> None:
    data = default_codec().encode(FRAME, FRAME_VALUE)
    with pytest.raises(DecodeError, match="trailing bytes"):
        default_codec().decode(data + b"\x00")


def test_wrong_record_for_topic_is_rejected() -> None:
    data = default_codec().encode(FRAME, FRAME_VALUE)
    with pytest.raises(DecodeError, match="expected camcount.CountEvent") as exc:
        default_codec().decode_as(data, COUNT_EVENT)
    assert exc.value.reason == "wrong_record"


def test_encode_unknown_record_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="camcount.Frame"):
        default_codec().encode("camcount.Nope", {})
