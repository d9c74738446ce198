"""Registry loading and refusal: bad keys, wrong checksums, wrong input/output specs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.exceptions import ConfigError, ModelIntegrityError
from pipeline.inference.registry import (
    DEFAULT_REGISTRY_PATH,
    ModelRegistry,
    default_models_dir,
    sha256_hex,
    verify_session_io,
)
from pipeline.inference.decoders import DecodeSettings, build_decoder
from pipeline.inference.detector import load_detector
from pipeline.inference.session import SessionSettings, create_session

DYNBATCH = "yolox_nano_dynbatch.onnx"
BATCH1 = "yolox_nano.onnx"
BATCH1_SHA = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"


def registry_dict() -> dict:
    return yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())


def write_registry(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def entry_with(**changes) -> dict:
    """The repo's yolox-nano:1 entry with top-level or dotted-key changes."""
    raw = registry_dict()
    entry = copy.deepcopy(raw["models"][0])
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = entry
        for part in parents:
            target = target[part]
        target[last] = value
    raw["models"] = [entry]
    return raw


def test_repo_registry_loads_and_names_yolox_nano(models_dir):
    registry = ModelRegistry.load(models_dir=models_dir)
    spec = registry.get("yolox-nano", "1")
    assert spec.file == DYNBATCH and spec.input.dynamic_batch
    assert (spec.input.height, spec.input.width, spec.input.colour) == (416, 416, "BGR")
    names = registry.class_names(spec)
    assert names == tuple((models_dir / "coco80.txt").read_text().split("\n")[:80])
    assert len(registry.read_verified(spec)) == 3_648_824


@pytest.mark.parametrize(
    "raw, key",
    [
        # misspelt key inside an entry
        (entry_with(input__hieght=416), "models.0.input.hieght"),
        # checksum that is not 64 hex digits
        (entry_with(sha256="abc"), "models.0.sha256"),
        # layout the preprocessor does not implement
        (entry_with(input__layout="NHWC"), "models.0.input.layout"),
        # unknown decoder family
        (entry_with(output__decoder={"name": "detr"}), "models.0.output.decoder.name"),
        # dynamic input but a fixed output batch dim
        (entry_with(output__shape=[1, 3549, 85]), "models.0"),
        # classes given twice
        (entry_with(classes={"names": ["a"], "file": "x.txt"}), "models.0.classes"),
    ],
)
def test_invalid_registry_names_the_key(tmp_path, raw, key):
    with pytest.raises(ConfigError) as info:
        ModelRegistry.load(write_registry(tmp_path, raw), models_dir=tmp_path)
    assert f"  {key}" in str(info.value) and "registry.yaml" in str(info.value)


def test_duplicate_version_is_refused(tmp_path):
    raw = registry_dict()
    raw["models"].append(raw["models"][0])
    last = len(raw["models"]) - 1
    with pytest.raises(ConfigError, match=f"models.{last}: duplicate version yolox-nano:1"):
        ModelRegistry.load(write_registry(tmp_path, raw), models_dir=tmp_path)


def test_unknown_version_lists_known_ones(models_dir):
    with pytest.raises(ConfigError, match=r"yolox-nano:9 \(known: yolox-nano:1, yolox-nano:1-b1\)"):
        ModelRegistry.load(models_dir=models_dir).get("yolox-nano", "9")


def test_checksum_mismatch_is_refused_with_file_expected_and_actual(tmp_path, models_dir):
    data = bytearray((models_dir / DYNBATCH).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    (tmp_path / DYNBATCH).write_bytes(bytes(data))
    registry = ModelRegistry.load(models_dir=tmp_path, cache_dir=tmp_path / "cache")
    spec = registry.get("yolox-nano", "1")
    with pytest.raises(ModelIntegrityError) as info:
        registry.read_verified(spec)
    message = str(info.value)
    assert str(tmp_path / DYNBATCH) in message
    assert f"expected {spec.sha256}" in message
    assert f"actual {sha256_hex(bytes(data))}" in message


def test_missing_file_names_every_place_looked(tmp_path):
    registry = ModelRegistry.load(models_dir=tmp_path / "m", cache_dir=tmp_path / "c")
    with pytest.raises(ModelIntegrityError, match="not found; tried") as info:
        registry.read_verified(registry.get("yolox-nano", "1"))
    assert str(tmp_path / "c" / "yolox-nano" / "1" / DYNBATCH) in str(info.value)


def test_absolute_file_outside_the_models_dir(tmp_path, models_dir):
    shutil.copy(models_dir / DYNBATCH, tmp_path / "elsewhere.onnx")
    raw = entry_with(file=str(tmp_path / "elsewhere.onnx"))
    registry = ModelRegistry.load(write_registry(tmp_path, raw), models_dir="/nonexistent")
    assert len(registry.read_verified(registry.get("yolox-nano", "1"))) == 3_648_824


def test_models_dir_precedence(tmp_path):
    assert default_models_dir({"CAMCOUNT_MODELS_DIR": "/x/m"}) == Path("/x/m")
    assert default_models_dir({"CAMCOUNT_SHARED": "/s"}) == Path("/s/models")
    assert default_models_dir({}).parts[-2:] == ("shared", "models")
    env = {"CAMCOUNT_MODELS_DIR": str(tmp_path / "env")}
    assert ModelRegistry.load(environ=env).models_dir == tmp_path / "env"
    assert ModelRegistry.load(models_dir=tmp_path, environ=env).models_dir == tmp_path


def session_for(registry: ModelRegistry, spec):
    return create_session(registry.read_verified(spec), SessionSettings(intra_op_num_threads=1))


@pytest.mark.parametrize(
    "changes, message",
    [
        # model is 416x416, spec says 320x320
        (
            {"input__height": 320, "input__width": 320},
            r"spec says tensor\(float\) \['batch', 3, 320, 320\]",
        ),
        # wrong input tensor name
        ({"input__name": "input"}, r"inputs \['images'\] do not match spec input 'input'"),
        # wrong output name
        ({"output__name": "boxes"}, r"no output 'boxes' \(has \['output'\]\)"),
        # the dynamic-batch file declared as batch-1
        (
            {"input__dynamic_batch": False, "output__shape": [1, 3549, 85]},
            r"spec says tensor\(float\) \[1, 3, 416, 416\]",
        ),
    ],
)
def test_session_not_matching_the_spec_is_refused(tmp_path, models_dir, changes, message):
    registry = ModelRegistry.load(write_registry(tmp_path, entry_with(**changes)), models_dir)
    spec = registry.get("yolox-nano", "1")
    with pytest.raises(ModelIntegrityError, match=message):
        verify_session_io(session_for(registry, spec), spec)


def test_batch1_file_declared_dynamic_is_refused(tmp_path, models_dir):
    raw = entry_with(file=BATCH1, sha256=BATCH1_SHA)
    registry = ModelRegistry.load(write_registry(tmp_path, raw), models_dir)
    refused = r"'images' is tensor\(float\) \[1, 3, 416, 416\]"
    with pytest.raises(ModelIntegrityError, match=refused):
        load_detector(registry, "yolox-nano", "1")  # verifies before it decodes anything


def test_decoder_refuses_output_shape_that_does_not_fit(tmp_path, models_dir):
    raw = entry_with(output__shape=["batch", 3549, 84])
    registry = ModelRegistry.load(write_registry(tmp_path, raw), models_dir)
    spec = registry.get("yolox-nano", "1")
    with pytest.raises(ModelIntegrityError, match="does not fit yolox with 80 classes"):
        build_decoder(spec, registry.class_names(spec), DecodeSettings())


def test_nms_group_with_unknown_class_is_refused(tmp_path, models_dir):
    raw = entry_with(nms_groups={"vehicle": ["car", "tram"]})
    registry = ModelRegistry.load(write_registry(tmp_path, raw), models_dir)
    with pytest.raises(ConfigError, match=r"unknown classes \['tram'\]"):
        registry.class_names(registry.get("yolox-nano", "1"))


def test_class_names_file_is_checksummed(tmp_path, models_dir):
    (tmp_path / "coco80.txt").write_text((models_dir / "coco80.txt").read_text() + "extra\n")
    raw = entry_with(classes={"file": "coco80.txt", "sha256": "0" * 64})
    registry = ModelRegistry.load(write_registry(tmp_path, raw), models_dir=tmp_path)
    with pytest.raises(ModelIntegrityError, match="coco80.txt: sha256 mismatch"):
        registry.class_names(registry.get("yolox-nano", "1"))
