"""``camcount models quantize`` on the real model and clip: a loadable, registrable INT8 candidate."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import yaml

from pipeline.boxes import iou_matrix
from pipeline.cli import main
from pipeline.exceptions import ModelIntegrityError
from pipeline.inference.detector import load_detector
from pipeline.inference.registry import DEFAULT_REGISTRY_PATH, ModelRegistry

from .conftest import PETS09, shared_file


def _people(detections, min_score: float = 0.0) -> np.ndarray:
    return detections.xyxy[(detections.class_ids == 0) & (detections.scores >= min_score)]


def test_quantized_version_registers_loads_and_finds_the_same_people(tmp_path, capsys, models_dir, pets09_frames):
    out = tmp_path / "yolox-int8.onnx"
    assert main(["models", "quantize", "yolox-nano:1", "--calibration", str(shared_file(PETS09)),
                 "--frames", "16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    entries = yaml.safe_load(printed)  # the '#' lines are YAML comments
    assert [(e["name"], e["version"], e["file"]) for e in entries] == [("yolox-nano", "1-int8", str(out))]
    assert "modification" in {p.key for p in onnx.load(out).metadata_props}

    registry_file = tmp_path / "registry.yaml"
    registry = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
    registry["models"] += entries
    registry_file.write_text(yaml.safe_dump(registry, sort_keys=False))
    registry = ModelRegistry.load(registry_file, models_dir=models_dir)
    float_model = load_detector(registry, "yolox-nano", "1")
    int8_model = load_detector(registry, "yolox-nano", "1-int8")  # checksum and input/output spec verified
    assert registry.class_names(registry.get("yolox-nano", "1-int8")) == float_model.class_names

    frames = list(pets09_frames.values())
    found = total = 0
    for expected, got in zip(float_model.detect_batch(frames), int8_model.detect_batch(frames), strict=True):
        people, int8_people = _people(expected, 0.5), _people(got)  # scores move: any kept box of int8
        total += len(people)
        if len(people) and len(int8_people):
            found += int((iou_matrix(people, int8_people).max(axis=1) >= 0.5).sum())
    assert total >= 20 and found >= 0.9 * total, (found, total)

    out.write_bytes(out.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_detector(registry, "yolox-nano", "1-int8")


def test_an_unreadable_calibration_video_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "not-a-video.mp4"
    bad.write_bytes(b"nothing")
    assert main(["models", "quantize", "yolox-nano:1", "--calibration", str(bad), "--out",
                 str(tmp_path / "q.onnx")]) != 0
    assert "not-a-video.mp4" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()
