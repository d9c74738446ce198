"""``camcount count`` on the real clips with the real model, against PROVENANCE.md ground truth.

Measured (yolox-nano:1, bench/bench_counting_accuracy.py): street 8 in / 0 out at every frame,
at 10 and at 12 fps; pets09 11 in / 14 out at 10 fps. Tolerances asserted:

- street: exact. The 8 cars are large, unoccluded and alone on the line, and nothing drives
  away over it, so one miss (12 % of the clip) or any ``out`` is a real regression.
- pets09: within 1 per direction. People cross the line in pairs and in groups next to the
  lamp post, where a detector miss or a merged box can cost or add one identity; more than one
  per direction is beyond that.

The clips are full length (street 453 frames at 12 fps, pets09 795 at 10 fps: about 10 and
15 s of detection on two cores); each command runs once per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import av
import pytest

from pipeline.config import shared_dir
from pipeline.counting import offline

VEHICLES = "car,motorcycle,bus,truck"
STREET_LINE = "180,200,560,200"  # points right: "in" = top -> bottom, towards the camera
PETS_LINE = "320,576,320,0"  # points up: "in" = left -> right
PETS_LINE_REVERSED = "320,0,320,576"


def camcount(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=timeout_s)


def clip(name: str) -> str:
    path = shared_dir() / "data" / "videos" / name
    if not path.is_file():
        pytest.fail(f"{path} not found; set CAMCOUNT_SHARED to the shared folder")
    return str(path)


@cache
def count_json(*args: str) -> list[dict]:
    """``camcount count ... --json`` counts, run once per distinct argument list."""
    result = camcount("count", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["counts"]


def by_direction(rows: list[dict], rule: str = "line1") -> dict[str, int]:
    out = {"in": 0, "out": 0}
    for row in rows:
        if row["rule"] == rule:
            out[row["direction"]] += row["count"]
    return out


def test_street_clip_counts_eight_cars_in():
    rows = count_json(clip("street_cars_approaching.mp4"), "--line", STREET_LINE, "--classes", VEHICLES,
                      "--fps", "12")
    assert by_direction(rows) == {"in": 8, "out": 0}
    assert {row["class"] for row in rows} <= set(VEHICLES.split(","))


def test_pets09_counts_each_person_once_per_direction():
    rows = count_json(clip("pets09_s2l1_pedestrians.avi"), "--line", PETS_LINE, "--fps", "10")
    counted = by_direction(rows)
    assert abs(counted["in"] - 11) <= 1 and abs(counted["out"] - 14) <= 1, counted
    assert {row["class"] for row in rows} == {"person"}


def test_json_is_exactly_the_documented_shape():
    result = camcount("count", clip("pets09_s2l1_pedestrians.avi"), "--line", PETS_LINE, "--end-s", "20", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert list(document) == ["counts"]
    for row in document["counts"]:
        assert list(row) == ["rule", "class", "direction", "count"]
        assert row["rule"] == "line1" and row["direction"] in ("in", "out")
        assert isinstance(row["class"], str) and isinstance(row["count"], int) and row["count"] > 0
    keys = [(r["rule"], r["class"], r["direction"]) for r in document["counts"]]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert "frames/s" not in result.stderr  # no progress bar when stderr is not a terminal


def test_two_lines_and_a_class_filter():
    """The second line is the first one reversed, so its in and out swap; PROVENANCE quick
    subset, frames 0-199: 2 left -> right and 3 right -> left."""
    pets = clip("pets09_s2l1_pedestrians.avi")
    rows = count_json(pets, "--line", PETS_LINE, "--line", PETS_LINE_REVERSED, "--classes", "person",
                      "--end-s", "20")
    assert {row["class"] for row in rows} == {"person"}
    first, second = by_direction(rows, "line1"), by_direction(rows, "line2")
    assert first == {"in": 2, "out": 3}
    assert second == {"in": first["out"], "out": first["in"]}
    # nobody here is a car: the same clip counts nothing with --classes car
    assert count_json(pets, "--line", PETS_LINE, "--classes", "car", "--end-s", "20") == []


def test_a_configured_camera_is_found_by_its_source(tmp_path: Path):
    pets = clip("pets09_s2l1_pedestrians.avi")
    cfg = tmp_path / "camcount.yaml"
    cfg.write_text(json.dumps({"cameras": [{
        "id": "campus", "source": pets, "fps": 10, "resolution": [768, 576],
        "rules": [{"type": "line", "name": "road", "points": [[320, 576], [320, 0]], "classes": ["person"]}],
    }]}))
    result = camcount("count", pets, "--config", str(cfg), "--end-s", "20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("camera campus, model yolox-nano:1: 200 frames at 10 fps")
    table = [line.split() for line in lines[2:]]
    assert table == [["rule", "class", "in", "out"], ["road", "person", "2", "3"]]


def test_annotated_video_via_the_cli(tmp_path: Path):
    out = tmp_path / "street.mp4"
    result = camcount("count", clip("street_cars_approaching.mp4"), "--line", STREET_LINE, "--end-s", "3",
                      "--annotate", str(out), "--json")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    # one video frame per counted frame: 3 s at the default 10 fps
    sampled = offline.sample_frames(Path(clip("street_cars_approaching.mp4")),
                                    offline.CountOptions(fps=10.0, jpeg_quality=None, end_s=3.0))
    assert frames == sum(1 for _ in sampled) and 29 <= frames <= 31


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["street_cars_approaching.mp4"], 2, "nothing to count"),  # no rules at all
        (["street_cars_approaching.mp4", "--line", STREET_LINE, "--classes", "unicorn"], 2, "unicorn"),
        (["street_cars_approaching.mp4", "--line", "1,2,3"], 2, "X1,Y1,X2,Y2"),
        (["street_cars_approaching.mp4", "--line", STREET_LINE, "--model", "yolox-nano:9"], 2, "no model version"),
        (["street_cars_approaching.mp4", "--line", STREET_LINE, "--camera", "nope"], 2, "no camera 'nope'"),
        (["no_such_clip.mp4", "--line", STREET_LINE], 1, "no such file"),
    ],
)
def test_errors_exit_with_a_reason(args, code, message):
    if args[0] != "no_such_clip.mp4":
        args = [clip(args[0]), *args[1:]]
    result = camcount("count", *args, timeout_s=60)
    assert result.returncode == code, (result.returncode, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""
