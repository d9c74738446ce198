"""Input limits of the counter: a Detections record with too many boxes is refused (to the DLQ)."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from pipeline.config import parse_settings
from pipeline.counting.processor import check_box_limit
from pipeline.exceptions import ConfigError, DecodeError, InputLimitError

BOX = dict(class_id=0, score=0.9, x1=0.1, y1=0.1, x2=0.2, y2=0.2)


def _rec(n: int) -> dict:
    return dict(camera_id="cam-a", seq=7, boxes=[BOX] * n)


@pytest.mark.parametrize(
    "boxes, max_boxes, expectation",
    [
        (0, 1, does_not_raise()),  # an empty frame is fine
        (1000, 1000, does_not_raise()),  # exactly at the limit
        (1001, 1000, pytest.raises(InputLimitError, match="carry 1001 boxes, over counting.max_boxes=1000")),
        (5, 4, pytest.raises(DecodeError, match="camera 'cam-a' seq 7")),  # a DecodeError: the DLQ path
    ],
)
def test_box_limit(boxes: int, max_boxes: int, expectation) -> None:
    with expectation:
        check_box_limit(_rec(boxes), max_boxes)


def test_max_boxes_is_configured_and_checked() -> None:
    assert parse_settings({}, environ={}).counting.max_boxes == 1000
    assert parse_settings({"counting": {"max_boxes": 50}}, environ={}).counting.max_boxes == 50
    with pytest.raises(ConfigError, match="counting.max_boxes"):
        parse_settings({"counting": {"max_boxes": 0}}, environ={})
    err = InputLimitError("x")
    assert err.reason == "input_limit"
