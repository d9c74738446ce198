"""Offline counting (``pipeline.counting.offline``) on the real clips with the real model.

The clips and model live in the shared folder (``shared_dir()``); a missing file fails
the test (the ``shared`` fixture), it never skips.
"""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.codec import COUNT_EVENT, DETECTIONS, default_codec
from pipeline.config import CameraConfig, Settings, parse_settings
from pipeline.counting import offline
from pipeline.counting.annotate import Annotator, SnapshotSink, VideoSink, open_sink
from pipeline.counting.camera_rules import rules_for_camera
from pipeline.counting.processor import CountingProcessor
from pipeline.exceptions import ConfigError
from pipeline.inference.detector import OnnxDetector, load_detector
from pipeline.inference.registry import registry_from_settings
from pipeline.ingest.exceptions import SourceError
from pipeline.ingest.sampler import FrameSampler

VEHICLES = ["car", "motorcycle", "bus", "truck"]
STREET_LINE = (180.0, 200.0, 560.0, 200.0)  # PROVENANCE.md: points right, so "in" = top -> bottom
START_MS = 1_700_000_000_000
NAMES = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return parse_settings({}, "<tests>")


@pytest.fixture(scope="module")
def class_names(settings: Settings):
    return offline.registry_class_names(registry_from_settings(settings))


@pytest.fixture(scope="module")
def detector(settings: Settings) -> OnnxDetector:
    return load_detector(registry_from_settings(settings), "yolox-nano", "1", settings.inference.session,
                         settings.inference.decode)


def _video(width: int = 640, height: int = 352) -> offline.VideoInfo:
    return offline.VideoInfo(Path("/videos/street cam #1.mp4"), width, height, 24.0, 905, 37.7)


# --- sampling: ingest's sampler and clock on the decoded file ----------------------------------


@pytest.fixture(scope="module")
def street_times(street_cars: Path) -> list[float]:
    """Media time of every decoded frame of the street clip."""
    every = offline.CountOptions(fps=None, jpeg_quality=None, start_ms=START_MS)
    return [f.t_s for f in offline.sample_frames(street_cars, every)]


@pytest.mark.parametrize("fps", [10.0, 12.0, 24.0])
def test_sampling_is_ingests_sampler_on_presentation_times(street_cars: Path, street_times, fps):
    assert len(street_times) == 905  # PROVENANCE: 905 frames, pts from 0, 41-42 ms apart
    assert street_times[0] == 0.0 and all(0.04 < b - a < 0.09 for a, b in zip(street_times, street_times[1:]))
    sampler = FrameSampler(fps)
    expected = [t for t in street_times if sampler.offer(t)]
    options = offline.CountOptions(fps=fps, jpeg_quality=None, start_ms=START_MS)
    frames = [(f.seq, f.t_s, f.capture_ts_ms) for f in offline.sample_frames(street_cars, options)]
    assert [t for _, t, _ in frames] == expected
    assert abs(len(frames) - 37.7 * min(fps, 24.0)) <= 3  # about fps frames a second
    assert [seq for seq, _, _ in frames] == list(range(len(frames)))
    # capture time is the start plus media time from the pts, so it is the same on every run
    assert all(ts == START_MS + round(t * 1000) for _, t, ts in frames)


def test_sampling_is_deterministic_and_stops_at_end_s(pets09: Path):
    options = offline.CountOptions(fps=5.0, jpeg_quality=85, start_ms=START_MS, end_s=20.0)
    first = list(offline.sample_frames(pets09, options))
    second = list(offline.sample_frames(pets09, options))
    assert len(first) == 100  # 200 frames at 10 fps, every 2nd
    assert [(f.seq, f.capture_ts_ms) for f in first] == [(f.seq, f.capture_ts_ms) for f in second]
    assert all(np.array_equal(a.model_input, b.model_input) for a, b in zip(first[:5], second[:5]))
    # the detector sees ingest's JPEG: same size, different pixels
    assert first[0].model_input.shape == first[0].image.shape
    assert not np.array_equal(first[0].model_input, first[0].image)


def test_probe_refuses_what_is_not_a_video(tmp_path: Path):
    with pytest.raises(SourceError, match="no such file"):
        offline.probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(SourceError):
        offline.probe(junk)


# --- which camera and rules count a video -------------------------------------------------------


@pytest.mark.parametrize(
    ("cameras", "lines", "classes", "expected_rules", "expectation"),
    [
        # no config: a camera named after the file, the line in pixels of the video
        ([], [STREET_LINE], None, [("line1", ((180, 200), (560, 200)), None)], does_not_raise()),
        # two lines, named in order, both limited to --classes
        ([], [STREET_LINE, (0, 0, 10, 10)], ["car"],
         [("line1", ((180, 200), (560, 200)), ["car"]), ("line2", ((0, 0), (10, 10)), ["car"])], does_not_raise()),
        # a configured camera with a different resolution: --line is scaled into its pixels
        ([dict(id="cam", source="/videos/street cam #1.mp4", resolution=[1280, 704],
               rules=[dict(type="line", name="gate", points=[[0, 0], [100, 100]], classes=["person", "car"])])],
         [STREET_LINE], ["car"],
         [("gate", ((0, 0), (100, 100)), ["car"]), ("line1", ((360, 400), (1120, 400)), ["car"])], does_not_raise()),
        # a configured camera with normalised rules: --line is normalised
        ([dict(id="cam", source="file:///videos/street cam #1.mp4",
               rules=[dict(type="line", name="gate", points=[[0, 0], [0.5, 0.5]], classes=["person"])])],
         [(320, 176, 640, 176)], None,
         [("gate", ((0, 0), (0.5, 0.5)), ["person"]), ("line1", ((0.5, 0.5), (1, 0.5)), None)], does_not_raise()),
        # --classes drops a configured rule that counts none of them
        ([dict(id="cam", source="/videos/street cam #1.mp4",
               rules=[dict(type="line", name="gate", points=[[0, 0], [0.5, 0.5]], classes=["person"])])],
         [STREET_LINE], ["car"], [("line1", ((180 / 640, 200 / 352), (560 / 640, 200 / 352)), ["car"])],
         does_not_raise()),
        # nothing to count: no --line and no camera for this video
        ([], [], None, [], pytest.raises(ConfigError, match="nothing to count")),
        # a class the model does not have
        ([], [STREET_LINE], ["unicorn"], [], pytest.raises(ConfigError, match="unicorn")),
        # a line outside the frame
        ([], [(0, 0, 700, 100)], None, [], pytest.raises(ConfigError, match="outside the 640x352")),
    ],
)
def test_camera_for_video(cameras, lines, classes, expected_rules, expectation):
    settings = parse_settings({"cameras": cameras}, "<tests>")
    with expectation:
        camera = offline.camera_for_video(settings, _video(), None, lines, classes, NAMES)
        got = [(r.name, tuple(tuple(float(v) for v in p) for p in r.points), r.classes) for r in camera.rules]
        assert got == [(n, tuple(tuple(float(v) for v in p) for p in pts), c) for n, pts, c in expected_rules]
        if not cameras:
            assert (camera.id, camera.resolution, camera.fps) == ("street_cam_1", (640, 352), 10.0)


def test_camera_for_video_by_id_and_unknown_id():
    settings = parse_settings({"cameras": [dict(id="gate", source="rtsp://cam/1", fps=5, max_width=320,
                                                rules=[dict(type="line", name="a", points=[[0, 0], [1, 1]])])]}, "<t>")
    camera = offline.camera_for_video(settings, _video(), "gate")
    assert camera.id == "gate" and [r.name for r in camera.rules] == ["a"]
    options = offline.CountOptions.for_camera(settings, camera)
    assert (options.fps, options.max_width, options.jpeg_quality) == (5, 320, 85)
    with pytest.raises(ConfigError, match="no camera 'nope'"):
        offline.camera_for_video(settings, _video(), "nope")


def test_count_totals_rows_are_sorted_and_count_an_event_once():
    def event(event_id, rule, cls, direction):
        return COUNT_EVENT, dict(event_id=event_id, rule=rule, class_name=cls, direction=direction)

    totals = offline.CountTotals()
    new = totals.add([event("a", "z", "car", "out"), event("b", "z", "car", "in"), ("Heartbeat", {}),
                      event("c", "a", "truck", "in"), event("b", "z", "car", "in")])  # b twice: once
    assert [e["event_id"] for e in new] == ["a", "b", "c"]
    assert totals.add([event("a", "z", "car", "out")]) == []  # re-delivered later: ignored
    assert totals.rows() == [
        {"rule": "a", "class": "truck", "direction": "in", "count": 1},
        {"rule": "z", "class": "car", "direction": "in", "count": 1},
        {"rule": "z", "class": "car", "direction": "out", "count": 1},
    ]


# --- the whole path on the real clip ------------------------------------------------------------


@pytest.fixture(scope="module")
def street_quick(settings, detector, class_names, street_cars):
    """Frames 0-299 of the street clip (12.5 s) at 12 fps, every frame result kept."""
    video = offline.probe(street_cars)
    camera = offline.camera_for_video(settings, video, None, [STREET_LINE], VEHICLES,
                                      class_names("yolox-nano", "1"))
    options = replace(offline.CountOptions.for_camera(settings, camera), fps=12.0, end_s=12.5, start_ms=START_MS)
    counter = offline.OfflineCounter(settings, camera, detector, class_names, options)
    results: list[offline.FrameResult] = []
    report = counter.run(video.path, results.append)
    return counter, report, results


def test_quick_street_subset_counts_five_cars_in(street_quick):
    _, report, results = street_quick
    # PROVENANCE.md quick-test subset, frames 0-299: 5 vehicles "in", 0 "out"
    by_direction = {"in": 0, "out": 0}
    for (_rule, cls, direction), n in report.totals.counts.items():
        assert cls in VEHICLES
        by_direction[direction] += n
    assert by_direction == {"in": 5, "out": 0}
    assert report.frames == len(results) == 150


def test_records_are_the_inference_workers_and_replay_identically(street_quick, settings, class_names):
    """The records fed to the processor are valid Detections on the wire; replaying them into
    a fresh processor, with the state passed through JSON as the changelog table does, gives
    the same count events (the faust agent's loop, minus Kafka)."""
    counter, report, results = street_quick
    codec = default_codec()
    first = results[0].record
    assert first["camera_id"] == counter.camera.id and (first["width"], first["height"]) == (640, 352)
    assert [r.record["seq"] for r in results] == list(range(len(results)))
    assert len({r.record["stream_id"] for r in results}) == 1
    processor = CountingProcessor(counter.settings, class_names, settings.counting.tracker_params())
    state, events = None, []
    for result in results:
        rec = codec.decode_as(codec.encode(DETECTIONS, result.record), DETECTIONS)
        out = processor.process(rec, state)
        state = json.loads(json.dumps(out.state))
        events += [v["event_id"] for name, v in out.records if name == COUNT_EVENT]
    offline_events = [v["event_id"] for r in results for name, v in r.output.records if name == COUNT_EVENT]
    assert events == offline_events and len(events) == 5


def test_same_input_same_stream_and_event_ids(street_cars: Path):
    a = offline.stream_id_for(street_cars, "cam", START_MS, 10.0)
    assert a == offline.stream_id_for(street_cars, "cam", START_MS, 10.0)
    assert a != offline.stream_id_for(street_cars, "cam", START_MS, 12.0)
    assert a != offline.stream_id_for(street_cars, "cam", START_MS + 1, 10.0)


# --- annotation ---------------------------------------------------------------------------------


def _annotate(street_quick, sink, class_names) -> None:
    counter, _, results = street_quick
    names = class_names("yolox-nano", "1")
    annotator = Annotator(sink, rules_for_camera(counter.camera, names), names,
                          counter.settings.counting.tracker_params())
    for result in results:
        annotator.add(result)
    annotator.close()


def test_annotated_video_shows_the_line_on_every_frame(street_quick, class_names, tmp_path: Path):
    path = tmp_path / "street.mp4"
    _annotate(street_quick, open_sink(path, 640, 352, 12.0), class_names)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 352)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(frames) == 150
    # the line y = 200 from x = 180 to 560 is drawn yellow (or green while counting): red channel
    # low, green high, on the road where the raw clip is grey asphalt
    for image in frames[::30]:
        b, g, r = image[199:202, 400:410].reshape(-1, 3).mean(axis=0)
        assert g > 150 and b < 120, (b, g, r)


def test_snapshots_are_written_for_each_count(street_quick, class_names, tmp_path: Path):
    sink = open_sink(tmp_path / "snaps", 640, 352, 12.0)
    assert isinstance(sink, SnapshotSink)
    _annotate(street_quick, sink, class_names)
    # five crossings (some may share a frame), the first frame and the last one
    assert 4 <= len(sink.written) <= 9
    assert all(p.suffix == ".png" and p.stat().st_size > 10_000 for p in sink.written)


@pytest.mark.parametrize(
    ("name", "kind", "expectation"),
    [
        ("out.mp4", VideoSink, does_not_raise()),
        ("out.MKV", VideoSink, does_not_raise()),
        ("snaps", SnapshotSink, does_not_raise()),
        ("out.gif", None, pytest.raises(ConfigError, match="--annotate")),
    ],
)
def test_open_sink_by_suffix(tmp_path: Path, name, kind, expectation):
    with expectation:
        sink = open_sink(tmp_path / name, 64, 48, 10.0)
        assert isinstance(sink, kind)
        sink.close()


def test_offline_camera_id_is_a_valid_camera_id():
    for name in ("street cam #1.mp4", "...mp4", "ünïcode.avi"):
        CameraConfig(id=offline.offline_camera_id(Path(name)), source=name)


# --- decode-ahead thread ------------------------------------------------------------------------


def test_prefetch_keeps_order_and_reraises_the_producers_error():
    assert list(offline.prefetch(range(100), depth=3)) == list(range(100))

    def failing():
        yield from range(5)
        raise ValueError("corrupt packet")

    got = []
    with pytest.raises(ValueError, match="corrupt packet"):
        for item in offline.prefetch(failing(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_closed_early_closes_the_source():
    closed = []

    def source():
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    stream = offline.prefetch(source(), depth=2)
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()  # joins the producer, which closes the source generator
    assert closed == [True]


@pytest.mark.parametrize(
    ("items", "size", "expected"),
    [
        (range(5), 2, [[0, 1], [2, 3], [4]]),  # a short last batch
        (range(4), 2, [[0, 1], [2, 3]]),  # exact
        ([], 3, []),  # nothing
    ],
)
def test_batched(items, size, expected):
    assert list(offline.batched(items, size)) == expected
