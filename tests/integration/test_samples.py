"""Without the shared folder the demo clip comes from Debian's opencv-doc, checked by sha256."""

from __future__ import annotations

from pathlib import Path

from pipeline.samples import VTEST_SHA256, _sha256, sample_clip


def test_shared_clip_is_used_when_present(pets09: Path, shared: Path, tmp_path: Path) -> None:
    assert sample_clip(shared, cache_dir=tmp_path) == pets09
    assert not list(tmp_path.iterdir())


def test_clip_is_fetched_from_debian_without_shared(tmp_path: Path, pets09: Path) -> None:
    clip = sample_clip(tmp_path / "no-shared", cache_dir=tmp_path / "cache")
    assert clip == tmp_path / "cache" / "vtest.avi"
    assert _sha256(clip) == VTEST_SHA256 == _sha256(pets09)  # the very same footage
    assert sample_clip(tmp_path / "no-shared", cache_dir=tmp_path / "cache") == clip  # cached now
