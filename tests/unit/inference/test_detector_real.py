"""The real YOLOX-Nano detector on real pets09 frames (shared/models/PROVENANCE.md).

PROVENANCE, frame 100 at threshold 0.3: 7 persons (0.53-0.80) on the walkers;
the parked vans/car at the top right come out as truck 0.76 and car 0.80/0.60
when NMS is class-aware.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from pipeline.inference.base import Detector
from pipeline.inference.decoders import DecodeSettings
from pipeline.inference.detector import OnnxDetector, load_detector
from pipeline.boxes import iou_matrix
from pipeline.inference.preprocess import decode_image
from pipeline.inference.registry import ModelRegistry
from pipeline.inference.session import SessionSettings
from pipeline.inference.timing import StageTimings

PERSON, CAR, TRUCK = 0, 2, 7
VEHICLES = [2, 3, 5, 7]
SESSION = SessionSettings(intra_op_num_threads=2)


@pytest.fixture(scope="module")
def registry(models_dir) -> ModelRegistry:
    return ModelRegistry.load(models_dir=models_dir)


@pytest.fixture(scope="module")
def detector(registry) -> OnnxDetector:
    return load_detector(registry, "yolox-nano", "1", SESSION, recorder=StageTimings())


def test_detector_satisfies_the_protocol(detector):
    assert isinstance(detector, Detector)
    assert (detector.name, detector.version) == ("yolox-nano", "1")


def test_frame_100_people_and_parked_vehicles(detector, pets09_frames):
    dets = detector.detect_batch([pets09_frames[100]])[0]
    people = dets[(dets.class_ids == PERSON) & (dets.scores >= 0.5)]
    assert 6 <= len(people) <= 8
    assert people.scores.max() == pytest.approx(0.80, abs=0.02)
    # walkers are in the middle band of the frame, not at the top-right car park
    assert ((people.xyxy[:, 3] > 0.15) & (people.xyxy[:, 1] < 0.5)).all()
    parked = dets[np.isin(dets.class_ids, VEHICLES) & (dets.scores >= 0.5)]
    assert set(parked.class_ids.tolist()) <= {CAR, TRUCK} and len(parked) >= 2
    assert (parked.xyxy[:, 0] > 0.8).all() and (parked.xyxy[:, 3] < 0.2).all()
    assert dets.xyxy.min() >= 0.0 and dets.xyxy.max() <= 1.0
    assert dets.scores.min() >= 0.1  # low-score boxes down to the floor, for tracking


def overlapping_vehicle_pairs(dets) -> int:
    vehicles = dets[np.isin(dets.class_ids, VEHICLES) & (dets.scores >= 0.3)]
    ious = np.triu(iou_matrix(vehicles.xyxy, vehicles.xyxy), k=1)
    return int((ious > 0.45).sum())


def test_vehicle_group_stops_a_van_counting_as_truck_and_car(registry, pets09_frames):
    grouped = load_detector(registry, "yolox-nano", "1", SESSION)
    aware = load_detector(
        registry, "yolox-nano", "1", SESSION, DecodeSettings(nms_groups={})
    )
    frame = [pets09_frames[100]]
    assert overlapping_vehicle_pairs(aware.detect_batch(frame)[0]) >= 1
    assert overlapping_vehicle_pairs(grouped.detect_batch(frame)[0]) == 0


def assert_same_detections(a, b) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-5)


def test_batch_of_8_equals_8_batches_of_1(detector, pets09_frames):
    frames = list(pets09_frames.values())
    assert len(frames) == 8
    batched = detector.run(detector.preprocess(frames))
    singles = [detector.run(detector.preprocess([f])) for f in frames]
    together = np.concatenate([s.outputs[0] for s in singles])
    assert np.abs(batched.outputs[0] - together).max() <= 1e-5
    for one, single in zip(detector.postprocess(batched), singles):
        assert_same_detections(one, detector.postprocess(single)[0])


def test_stages_with_a_thread_pool_and_own_buffer_equal_detect_batch(detector, pets09_frames):
    frames = list(pets09_frames.values())[:4]
    buffer = detector.new_buffer(8)
    with ThreadPoolExecutor(2) as pool:
        staged = detector.postprocess(detector.run(detector.preprocess(frames, buffer, pool)))
    for a, b in zip(staged, detector.detect_batch(frames)):
        assert_same_detections(a, b)


def test_batch1_model_version_gives_the_same_detections(tmp_path, registry, pets09_frames):
    """The static source file, registered as its own version, loops frame by frame."""
    spec = registry.get("yolox-nano", "1")
    static = spec.model_copy(
        update={
            "version": "1-static",
            "file": "yolox_nano.onnx",
            "sha256": spec.source.sha256,
            "input": spec.input.model_copy(update={"dynamic_batch": False}),
            "output": spec.output.model_copy(update={"shape": (1, 3549, 85)}),
        }
    )
    both = ModelRegistry([spec, static], registry.models_dir)
    frames = list(pets09_frames.values())[:3]
    dynamic = load_detector(both, "yolox-nano", "1", SESSION).detect_batch(frames)
    static_dets = load_detector(both, "yolox-nano", "1-static", SESSION).detect_batch(frames)
    for a, b in zip(static_dets, dynamic):
        assert_same_detections(a, b)


def test_jpeg_frames_decode_and_detect(detector, pets09_frames):
    ok, jpeg = cv2.imencode(".jpg", pets09_frames[100], [cv2.IMWRITE_JPEG_QUALITY, 90])
    dets = detector.detect_batch([decode_image(jpeg.tobytes())])[0]
    assert 6 <= int(((dets.class_ids == PERSON) & (dets.scores >= 0.5)).sum()) <= 8


def test_empty_batch(detector):
    assert detector.detect_batch([]) == []


def test_every_stage_is_timed_by_model_and_version(detector, pets09_frames):
    detector.detect_batch([pets09_frames[0], pets09_frames[25]])
    stats = detector.recorder.snapshot()
    for stage in ("preprocess", "run", "postprocess"):
        entry = stats[("yolox-nano", "1", stage)]
        assert entry.calls >= 1 and entry.frames >= 2 and entry.total_s > 0
