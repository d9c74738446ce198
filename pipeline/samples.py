"""The demo's sample clip, for machines with and without the shared folder.

With ``<shared>/data/videos`` present, its pets09 clip is used. Without it, the same
footage is taken from Debian's ``opencv-doc`` package (OpenCV's ``vtest.avi``), fetched
once with ``apt-get download`` into a cache and checked by sha256.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.config import shared_dir
from pipeline.exceptions import CamcountError

VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
VTEST_IN_DEB = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
CACHE_DIR = Path.home() / ".cache" / "camcount" / "samples"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_debian(target: Path) -> None:
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise CamcountError("no shared folder and no apt-get/dpkg-deb to fetch the sample clip (opencv-doc)")
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if got.returncode != 0 or not debs:
            raise CamcountError(f"apt-get download opencv-doc failed: {got.stderr.strip()[-300:]}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), tmp + "/root"], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "root" / VTEST_IN_DEB, target)


def sample_clip(shared: Path | None = None, cache_dir: Path = CACHE_DIR) -> Path:
    """Path of the pets09 / vtest.avi clip (shared folder, else the cached Debian copy)."""
    clip = (shared or shared_dir()) / "data" / "videos" / "pets09_s2l1_pedestrians.avi"
    if clip.is_file():
        return clip
    cached = cache_dir / "vtest.avi"
    if not cached.is_file():
        _from_debian(cached)
    if _sha256(cached) != VTEST_SHA256:
        cached.unlink()
        raise CamcountError(f"{cached}: sha256 differs from OpenCV's vtest.avi; removed, try again")
    return cached
