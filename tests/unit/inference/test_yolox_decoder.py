"""YOLOX output decoding on crafted output tensors."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.exceptions import ConfigError
from pipeline.inference.base import FrameMeta
from pipeline.inference.decoders.base import DecodeSettings, nms_group_ids
from pipeline.inference.decoders.yolox import YoloxDecoder, yolox_grid

INPUT_HW = (64, 64)  # levels: 8x8 (stride 8), 4x4 (16), 2x2 (32) = 84 rows
CLASSES = ("person", "car", "truck")
NUM_ROWS = 84
META = FrameMeta(ratio=0.5, height=128, width=128)  # 128x128 frame shown at 64x64


def make_output(*rows: tuple[int, list[float], float, list[float]]) -> np.ndarray:
    """One frame's output: background everywhere, given rows set.

    Each row is (row index, [tx, ty, tw, th], obj, class probabilities).
    """
    out = np.zeros((NUM_ROWS, 5 + len(CLASSES)), np.float32)
    out[:, 4] = 0.01
    for index, box, obj, probs in rows:
        out[index, :4] = box
        out[index, 4] = obj
        out[index, 5:] = probs
    return out


def decoder(**settings) -> YoloxDecoder:
    groups = settings.pop("groups", {"vehicle": ("car", "truck")})
    return YoloxDecoder(
        INPUT_HW, len(CLASSES), (8, 16, 32), nms_group_ids(CLASSES, groups),
        DecodeSettings(**settings),
    )


def test_grid_is_level_order_then_row_major():
    grid, strides = yolox_grid(INPUT_HW, (8, 16, 32))
    assert len(grid) == NUM_ROWS
    assert grid[:3].tolist() == [[0, 0], [1, 0], [2, 0]]  # x inner
    assert grid[8].tolist() == [0, 1]  # next row of the 8x8 level
    assert grid[64].tolist() == [0, 0] and strides[64] == 16  # second level starts
    assert grid[80].tolist() == [0, 0] and strides[80] == 32


def test_yolox_nano_grid_has_3549_rows():
    grid, _ = yolox_grid((416, 416), (8, 16, 32))
    assert len(grid) == 52 * 52 + 26 * 26 + 13 * 13 == 3549


@pytest.mark.parametrize(
    "row, box, expected_px",
    [
        # stride 8, cell (2, 1): centre ((0.5+2)*8, (0.5+1)*8) = (20, 12), size 8
        (10, [0.5, 0.5, 0.0, 0.0], [16, 8, 24, 16]),
        # stride 16, cell (1, 2) = row 64 + 2*4 + 1: centre (16, 32), size 16*e
        (73, [0.0, 0.0, 1.0, 0.0], [16 - 8 * np.e, 24, 16 + 8 * np.e, 40]),
        # stride 32, cell (1, 1) = row 80 + 3: centre (32+16, 32+16), size 32
        (83, [0.5, 0.5, 0.0, 0.0], [32, 32, 64, 64]),
    ],
)
def test_box_decoding_per_level(row, box, expected_px):
    dets = decoder().decode_frame(make_output((row, box, 0.9, [0.9, 0, 0])), META)
    # model pixels / ratio 0.5 = frame pixels; / 128 = normalised; clipped at 1
    expected = np.clip(np.array(expected_px) / 0.5 / 128, 0, 1)
    np.testing.assert_allclose(dets.xyxy, [expected], rtol=1e-5)


def test_score_is_obj_times_best_class():
    out = make_output((10, [0.5] * 2 + [0] * 2, 0.8, [0.1, 0.2, 0.7]))
    dets = decoder().decode_frame(out, META)
    assert dets.class_ids.tolist() == [2]
    np.testing.assert_allclose(dets.scores, [0.56], rtol=1e-6)


@pytest.mark.parametrize(
    "obj, prob, kept",
    [
        (0.5, 0.2, True),  # 0.1 exactly at the floor is kept
        (0.5, 0.19, False),  # 0.095 below the floor
        (0.09, 1.0, False),  # obj alone below the floor
    ],
)
def test_score_floor(obj, prob, kept):
    out = make_output((10, [0.5, 0.5, 0, 0], obj, [prob, 0, 0]))
    assert len(decoder(score_floor=0.1).decode_frame(out, META)) == int(kept)



def overlapping(class_a: int, class_b: int) -> np.ndarray:
    """Two near-identical boxes from neighbouring cells, scores 0.9 and 0.72."""
    a = [0.0, 0.0, 0.0]
    b = [0.0, 0.0, 0.0]
    a[class_a], b[class_b] = 1.0, 0.9
    return make_output((10, [0.5, 0.5, 0.2, 0.2], 0.9, a), (11, [-0.4, 0.5, 0.2, 0.2], 0.8, b))


@pytest.mark.parametrize(
    "classes, settings, expected_classes",
    [
        # same class: duplicate suppressed
        ((1, 1), {}, [1]),
        # car and truck are one NMS group: the van is one vehicle
        ((2, 1), {}, [2]),
        # without groups NMS is class-aware: both stay
        ((2, 1), {"groups": {}}, [2, 1]),
        # person and car are in different groups: both stay
        ((0, 1), {}, [0, 1]),
        # class-agnostic: everything is one group
        ((0, 1), {"class_agnostic": True}, [0]),
    ],
)
def test_grouped_nms(classes, settings, expected_classes):
    dets = decoder(**settings).decode_frame(overlapping(*classes), META)
    assert dets.class_ids.tolist() == expected_classes


def test_boxes_are_clipped_to_the_frame_and_empty_ones_dropped():
    frame = FrameMeta(ratio=1.0, height=40, width=64)  # letterbox padding below y=40
    out = make_output(
        (0, [0.0, 0.0, 1.0, 1.0], 0.9, [0.9, 0, 0]),  # around (0,0): clipped at 0
        (83, [0.5, 0.9, -2.0, -2.0], 0.9, [0, 0.9, 0]),  # wholly in the padding
    )
    dets = decoder().decode_frame(out, frame)
    assert len(dets) == 1
    assert dets.xyxy.min() >= 0.0 and dets.xyxy.max() <= 1.0
    np.testing.assert_allclose(dets.xyxy[0, :2], [0.0, 0.0])


def test_max_detections_keeps_the_best():
    rows = [(i, [0.5, 0.5, -1.0, -1.0], 0.2 + i / 100, [1, 0, 0]) for i in range(0, 64, 2)]
    dets = decoder(max_detections=3).decode_frame(make_output(*rows), META)
    np.testing.assert_allclose(dets.scores, [0.82, 0.8, 0.78], rtol=1e-5)


def test_empty_output_gives_empty_detections():
    dets = decoder().decode_batch([np.zeros((2, NUM_ROWS, 8), np.float32)], [META, META])
    assert [len(d) for d in dets] == [0, 0]


def test_decode_batch_refuses_a_wrong_shape():
    with pytest.raises(ValueError, match="output shape"):
        decoder().decode_batch([np.zeros((1, NUM_ROWS, 9), np.float32)], [META])


@pytest.mark.parametrize(
    "groups, message",
    [
        ({"vehicle": ("car", "boat")}, "unknown class 'boat'"),
        ({"a": ("car",), "b": ("car", "truck")}, "already in 'a'"),
    ],
)
def test_nms_group_ids_refuses_bad_groups(groups, message):
    with pytest.raises(ConfigError, match=message):
        nms_group_ids(CLASSES, groups)
