"""The camera reader on real clips, into a real queue (no broker needed here)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.codec import FRAME, default_codec
from pipeline.config import CameraConfig
from pipeline.ingest.base import OutgoingFrame
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.framequeue import FrameQueue
from pipeline.ingest.reader import CameraReader
from pipeline.ingest.stats import CameraStats
from opentelemetry import trace

from pipeline import telemetry
from pipeline.config import TelemetryConfig

START_MS = 1_700_000_000_000


def read_all(camera: CameraConfig, cfg: IngestConfig | None = None, start_ms: int | None = START_MS,
             max_frames: int | None = None) -> tuple[list[dict], list[OutgoingFrame], CameraStats]:
    q: FrameQueue[OutgoingFrame] = FrameQueue()
    q.add_camera(camera.id, 100_000)
    stats = CameraStats(camera.id)
    CameraReader(camera, cfg or IngestConfig(), q, stats, threading.Event(), start_ms, max_frames).run()
    items = []
    while (item := q.get(0)) is not None:
        items.append(item)
    assert q.finished()
    decoded = [default_codec().decode_as(i.value, FRAME) for i in items]
    images = [i for i, f in enumerate(decoded) if not f["end_of_stream"]]  # end marker: see its own test
    return [decoded[i] for i in images], [items[i] for i in images], stats


def test_a_file_that_ends_is_followed_by_an_end_of_stream_marker(street_cars: Path):
    q: FrameQueue[OutgoingFrame] = FrameQueue()
    q.add_camera("s", 100_000)
    CameraReader(CameraConfig(id="s", source=str(street_cars), fps=2), IngestConfig(), q, CameraStats("s"),
                 threading.Event(), START_MS, None).run()
    frames = []
    while (item := q.get(0)) is not None:
        frames.append(default_codec().decode_as(item.value, FRAME))
    *images, end = frames
    assert not any(f["end_of_stream"] for f in images)
    assert end["end_of_stream"] and end["data"] == b"" and end["seq"] == len(images)
    assert end["stream_id"] == images[-1]["stream_id"] and end["capture_ts_ms"] > images[-1]["capture_ts_ms"]


def test_file_sampled_by_presentation_time(pets09: Path):
    telemetry.setup(TelemetryConfig(), "test")  # a tracer provider: each frame gets a real root span
    frames, items, stats = read_all(CameraConfig(id="pets09", source=str(pets09), fps=5))
    # 795 frames at 10 fps = 79.5 s; at 5 fps that is 398 frames, 200 ms apart from START_MS.
    assert len(frames) == 398
    assert [f["seq"] for f in frames] == list(range(398))
    assert [f["capture_ts_ms"] for f in frames] == [START_MS + 200 * i for i in range(398)]
    assert len({f["stream_id"] for f in frames}) == 1
    assert {(f["width"], f["height"], f["encoding"]) for f in frames} == {(768, 576, "jpeg")}
    snap = stats.snapshot()
    assert (snap["frames_read"], snap["frames_sampled"], snap["decode_errors"], snap["state"]) == (795, 398 + 1, 0, "ended")  # + end marker
    contexts = [trace.get_current_span(telemetry.extract(i.headers)).get_span_context() for i in items]
    assert all(c.is_valid and c.trace_flags.sampled for c in contexts)
    assert len({c.trace_id for c in contexts}) == 398  # every frame starts a trace of its own
    image = cv2.imdecode(np.frombuffer(frames[-1]["data"], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (576, 768, 3)


def test_same_file_and_start_give_the_same_times_and_seqs(street_cars: Path):
    camera = CameraConfig(id="street", source=str(street_cars), fps=12)
    first, _, _ = read_all(camera, max_frames=60)
    again, _, _ = read_all(camera, max_frames=60)
    assert [(f["seq"], f["capture_ts_ms"]) for f in first] == [(f["seq"], f["capture_ts_ms"]) for f in again]
    assert len(first) == 60
    assert first[0]["stream_id"] != again[0]["stream_id"]  # each run is a new stream session
    assert [f["data"] for f in first] == [f["data"] for f in again]  # same pixels, same bytes


def test_default_start_is_the_files_mtime(street_cars: Path):
    frames, _, _ = read_all(CameraConfig(id="s", source=str(street_cars), fps=1), start_ms=None, max_frames=2)
    assert frames[0]["capture_ts_ms"] == int(street_cars.stat().st_mtime) * 1000


def test_config_start_applies_when_no_start_is_given(pets09: Path):
    cfg = IngestConfig(file_start_ms=42_000)
    frames, _, _ = read_all(CameraConfig(id="p", source=str(pets09), fps=1), cfg, start_ms=None, max_frames=2)
    assert [f["capture_ts_ms"] for f in frames] == [42_000, 43_000]


def test_downscale_and_quality_per_camera(street_cars: Path):
    cfg = IngestConfig(jpeg_quality=90, cameras={"small": {"jpeg_quality": 40}})
    big, _, _ = read_all(CameraConfig(id="big", source=str(street_cars), fps=2, max_width=320), cfg, max_frames=5)
    small, _, _ = read_all(CameraConfig(id="small", source=str(street_cars), fps=2, max_width=320), cfg, max_frames=5)
    assert {(f["width"], f["height"]) for f in big + small} == {(320, 176)}
    assert sum(len(f["data"]) for f in small) < sum(len(f["data"]) for f in big) / 2


def test_looping_file_continues_time_and_seq_with_a_new_stream(pets09: Path):
    camera = CameraConfig(id="loop", source=str(pets09), fps=1, loop=True)
    frames, _, stats = read_all(camera, IngestConfig(file_pacing="none"), max_frames=100)
    # 79.5 s per pass at 1 fps: 80 frames in the first pass, the rest in the second.
    assert [f["seq"] for f in frames] == list(range(100))
    stamps = [f["capture_ts_ms"] for f in frames]
    assert all(b - a == 1000 for a, b in zip(stamps, stamps[1:]))
    streams = [f["stream_id"] for f in frames]
    assert len(set(streams)) == 2 and streams.index(streams[-1]) == 80
    assert stats.loops == 1


@pytest.mark.parametrize("fps", [0.5, 3, 24])
def test_count_follows_duration_and_fps(street_cars: Path, fps: float):
    frames, _, _ = read_all(CameraConfig(id="s", source=str(street_cars), fps=fps))
    # 37.646 s from the first to the last frame; a frame may come up to a quarter slot, or
    # half a source frame interval (1/24 s), early.
    early = min(0.25, 0.5 * fps / 24)
    assert len(frames) == int(37.646 * fps + early) + 1


def test_looping_files_are_paced_in_real_time_by_default(pets09: Path):
    started = time.monotonic()
    frames, _, _ = read_all(CameraConfig(id="p", source=str(pets09), fps=10, loop=True), max_frames=16)
    elapsed_s = time.monotonic() - started
    # 16 frames at 10 fps span 1.5 s of media time; paced, that takes 1.5 s of wall time.
    assert len(frames) == 16 and 1.4 <= elapsed_s < 4.0


def test_pacing_can_be_forced_on_for_a_single_pass(pets09: Path):
    cfg = IngestConfig(file_pacing="realtime")
    started = time.monotonic()
    read_all(CameraConfig(id="p", source=str(pets09), fps=10), cfg, max_frames=11)
    assert time.monotonic() - started >= 0.95
