"""Fetching and converting the public source model, offline.

The download itself is replaced by reading the shared copy of the source file;
the conversion recipe is the real one and must reproduce the registry sha256.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.exceptions import ModelIntegrityError
from pipeline.inference.fetch import build_model_bytes, fetch_model
from pipeline.inference.registry import ModelRegistry, sha256_hex
from pipeline.inference.session import SessionSettings, create_session


@pytest.fixture(scope="module")
def spec(models_dir):
    return ModelRegistry.load(models_dir=models_dir).get("yolox-nano", "1")


@pytest.fixture(scope="module")
def source_bytes(models_dir) -> bytes:
    return (models_dir / "yolox_nano.onnx").read_bytes()


def test_recipe_reproduces_the_registered_file_byte_for_byte(spec, source_bytes):
    assert sha256_hex(build_model_bytes(spec, source_bytes)) == spec.sha256


def test_converted_model_runs_batches_like_the_shared_file(spec, source_bytes, models_dir):
    settings = SessionSettings(intra_op_num_threads=1)
    converted = create_session(build_model_bytes(spec, source_bytes), settings)
    shared = create_session((models_dir / spec.file).read_bytes(), settings)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 3, 416, 416)).astype(np.float32)
    ours = converted.run(None, {"images": batch})[0]
    assert ours.shape == (2, 3549, 85)
    np.testing.assert_array_equal(ours, shared.run(None, {"images": batch})[0])


def test_fetch_downloads_converts_caches_and_reuses(tmp_path, spec, source_bytes):
    calls: list[str] = []

    def downloader(url: str) -> bytes:
        calls.append(url)
        return source_bytes

    path = fetch_model(spec, tmp_path, downloader)
    assert path == tmp_path / "yolox-nano" / "1" / spec.file
    assert sha256_hex(path.read_bytes()) == spec.sha256
    assert fetch_model(spec, tmp_path, downloader) == path
    assert calls == [spec.source.url]  # second call used the cache
    # a registry without a models dir finds the fetched file in the cache
    registry = ModelRegistry.load(models_dir=tmp_path / "none", cache_dir=tmp_path)
    assert len(registry.read_verified(registry.get("yolox-nano", "1"))) == path.stat().st_size


def test_fetch_refuses_a_source_with_the_wrong_checksum(tmp_path, spec, source_bytes):
    tampered = source_bytes[:-1] + bytes([source_bytes[-1] ^ 1])
    with pytest.raises(ModelIntegrityError, match=f"expected {spec.source.sha256}"):
        fetch_model(spec, tmp_path, lambda url: tampered)
    assert not any(tmp_path.rglob("*.onnx*"))  # nothing half-written left behind


def test_fetch_replaces_a_corrupt_cached_file(tmp_path, spec, source_bytes):
    target = tmp_path / "yolox-nano" / "1" / spec.file
    target.parent.mkdir(parents=True)
    target.write_bytes(b"corrupt")
    fetched = fetch_model(spec, tmp_path, lambda url: source_bytes)
    assert sha256_hex(fetched.read_bytes()) == spec.sha256
