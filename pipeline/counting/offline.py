"""Offline counting: one video file through decode → sample → detect → count, in one process.

The steps are the distributed path's, without Kafka, so ``camcount count`` on a clip counts
what the pipeline counts on it:

- frames are sampled by presentation time with ingest's ``FrameSampler`` and stamped with
  its ``FileClock`` (same seq and ``capture_ts_ms`` as ``camcount ingest --start-ms``);
- each kept frame makes ingest's round trip (downscale to the camera's ``max_width``, JPEG at
  its quality, decode) unless ``jpeg_quality`` is None;
- the registry model detects in batches, and each frame's boxes become the ``Detections``
  record the inference worker publishes, passed through the Avro codec;
- the record goes to the same ``CountingProcessor`` the faust agent runs, with the state it
  returned for the previous frame, and totals are summed from its ``CountEvent`` records.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import av
import numpy as np

from pipeline.codec import COUNT_EVENT, DETECTIONS, Codec, default_codec
from pipeline.config import CameraConfig, Settings
from pipeline.counting.camera_rules import class_ids
from pipeline.counting.processor import CountingProcessor, Output
from pipeline.exceptions import ConfigError
from pipeline.inference.base import Detector
from pipeline.inference.frames import detections_record
from pipeline.inference.preprocess import decode_image
from pipeline.inference.registry import ModelRegistry
from pipeline.ingest.clock import FileClock
from pipeline.ingest.encode import encode_bgr, to_bgr
from pipeline.ingest.exceptions import SourceError
from pipeline.ingest.sampler import FrameSampler
from pipeline.ingest.sources import file_start_ms

#: A ``--line``: x1, y1, x2, y2 in pixels of the source video.
PixelLine = tuple[float, float, float, float]
#: (rule, class name, direction) -> number of count events.
CountKey = tuple[str, str, str]
_DIRECTION_ORDER = {"in": 0, "out": 1, "enter": 2, "exit": 3}


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns from a file's header: size, nominal rate, frames (0 if unknown)."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float


@dataclass(frozen=True)
class CountOptions:
    """How to read and detect a video; ``CountOptions.for_camera`` takes ingest's values.

    ``fps`` None keeps every decoded frame. ``jpeg_quality`` None detects on the decoded
    pixels (faster, but the pipeline detects on JPEGs, so counts can differ slightly).
    ``start_ms`` None stamps the first frame with the file's mtime, as ingest does.
    ``end_s`` stops at that much media time.
    """

    fps: float | None = 10.0
    batch_size: int = 8
    jpeg_quality: int | None = 85
    max_width: int | None = None
    start_ms: int | None = None
    end_s: float | None = None

    @classmethod
    def for_camera(cls, settings: Settings, camera: CameraConfig) -> "CountOptions":
        """What ingest and the inference worker would use for ``camera``."""
        return cls(fps=camera.fps, batch_size=settings.inference.max_batch,
                   jpeg_quality=settings.ingest.jpeg_quality_for(camera.id), max_width=camera.max_width,
                   start_ms=settings.ingest.file_start_ms)


@dataclass
class SampledFrame:
    """One kept frame: ``image`` as decoded (for drawing), ``model_input`` as the detector sees it."""

    seq: int
    t_s: float
    capture_ts_ms: int
    image: np.ndarray
    model_input: np.ndarray


@dataclass(frozen=True)
class FrameResult:
    """One counted frame: what went into the processor and what came out."""

    frame: SampledFrame
    record: dict[str, Any]
    output: Output


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and read its video stream's header; ``SourceError`` if it is not a video."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise SourceError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            return VideoInfo(path, stream.codec_context.width, stream.codec_context.height, rate,
                             stream.frames or 0, duration)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{path}: cannot open: {exc}") from None


def sample_frames(path: Path, options: CountOptions) -> Iterator[SampledFrame]:
    """Decode ``path`` and yield the frames ingest would keep, numbered and stamped as it would.

    Media time is the frame's pts minus the first frame's; a frame without pts is placed one
    nominal interval after the previous one.
    """
    sampler = FrameSampler(options.fps) if options.fps is not None else None
    start_ms = options.start_ms if options.start_ms is not None else file_start_ms(path)
    clock, seq = FileClock(start_ms), 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 90_000)
        step_s = 1.0 / float(stream.average_rate or 25)
        origin, t_s = None, -step_s
        for frame in container.decode(stream):
            if frame.pts is None:
                t_s += step_s
            else:
                origin = frame.pts if origin is None else origin
                t_s = float((frame.pts - origin) * time_base)
            if options.end_s is not None and t_s >= options.end_s:
                return
            if sampler is not None and not sampler.offer(t_s):
                continue
            image = to_bgr(frame)
            yield SampledFrame(seq, t_s, clock.capture_ts_ms(t_s), image, _model_input(image, options))
            seq += 1


def _model_input(image: np.ndarray, options: CountOptions) -> np.ndarray:
    """The pixels the inference worker would decode from ingest's JPEG of ``image``."""
    if options.jpeg_quality is None:
        return image
    return decode_image(encode_bgr(image, options.jpeg_quality, options.max_width).data)


def prefetch(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead (decode overlaps the model).

    An exception in the producer is re-raised here; closing the consumer stops the producer.
    """
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put((done, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's ``with`` blocks (the open video) end here

    thread = threading.Thread(target=produce, name="count-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def offline_camera_id(path: Path) -> str:
    """A camera id for a video without a configured camera: its file name, made a valid id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-") or "video"


def camera_for_video(settings: Settings, video: VideoInfo, camera_id: str | None = None,
                     lines: Sequence[PixelLine] = (), classes: Sequence[str] | None = None,
                     class_names: Sequence[str] = ()) -> CameraConfig:
    """The camera whose rules count ``video``: ``camera_id``, else the one whose source is the
    video, else a new one; plus ``lines`` (named line1, line2, ...), all limited to ``classes``.

    Raises ``ConfigError`` when no rule is left to count with.
    """
    camera = _configured_camera(settings, video.path, camera_id)
    if camera is None:
        camera = CameraConfig(id=offline_camera_id(video.path), source=str(video.path),
                              resolution=(video.width, video.height))
    raw = camera.model_dump(mode="python")
    if classes is not None:
        class_ids(classes, class_names, "--classes")  # unknown names are an error
        raw["rules"] = [r for r in (_narrow(r, classes) for r in raw["rules"]) if r is not None]
    for i, line in enumerate(lines, start=1):
        points = _line_points(line, video, camera.resolution)
        raw["rules"].append(dict(type="line", name=f"line{i}", points=points,
                                 classes=list(classes) if classes is not None else None))
    if not raw["rules"]:
        known = ", ".join(c.id for c in settings.cameras) or "none in the config"
        raise ConfigError(f"nothing to count in {video.path.name}: give --line X1,Y1,X2,Y2, or --camera ID "
                          f"of a configured camera with rules (cameras: {known})")
    try:
        return CameraConfig.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"camera {camera.id}: {exc}") from None


def _configured_camera(settings: Settings, path: Path, camera_id: str | None) -> CameraConfig | None:
    if camera_id is not None:
        return settings.camera(camera_id)
    for camera in settings.cameras:
        source = camera.source.removeprefix("file://")
        if "://" not in source and Path(source).resolve() == path.resolve():
            return camera
    return None


def _narrow(rule: dict[str, Any], classes: Sequence[str]) -> dict[str, Any] | None:
    """``rule`` limited to ``classes``; None when it counts none of them."""
    kept = list(classes) if rule["classes"] is None else [c for c in rule["classes"] if c in classes]
    return {**rule, "classes": kept} if kept else None


def _line_points(line: PixelLine, video: VideoInfo,
                 resolution: tuple[int, int] | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Video pixels to the camera's rule coordinates: its ``resolution`` pixels, else 0..1."""
    x1, y1, x2, y2 = line
    for x, y in ((x1, y1), (x2, y2)):
        if not (0 <= x <= video.width and 0 <= y <= video.height):
            raise ConfigError(f"--line {x1:g},{y1:g},{x2:g},{y2:g}: ({x:g}, {y:g}) is outside the "
                              f"{video.width}x{video.height} video")
    sx, sy = ((resolution[0] / video.width, resolution[1] / video.height) if resolution
              else (1 / video.width, 1 / video.height))
    return (x1 * sx, y1 * sy), (x2 * sx, y2 * sy)


@dataclass
class CountTotals:
    """Count events summed by (rule, class, direction); an event id is counted once."""

    counts: Counter = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set)

    def add(self, records: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Add the ``CountEvent`` records among ``records``; returns the new ones."""
        new = []
        for name, rec in records:
            if name == COUNT_EVENT and rec["event_id"] not in self._seen:
                self._seen.add(rec["event_id"])
                self.counts[(rec["rule"], rec["class_name"], rec["direction"])] += 1
                new.append(rec)
        return new

    def rows(self) -> list[dict[str, Any]]:
        """``{"rule", "class", "direction", "count"}`` for every key that counted, in a stable order."""
        keys = sorted(self.counts, key=lambda k: (k[0], k[1], _DIRECTION_ORDER.get(k[2], 9), k[2]))
        return [dict(rule=r, **{"class": c}, direction=d, count=self.counts[(r, c, d)]) for r, c, d in keys]


@dataclass
class CountReport:
    camera: CameraConfig
    model: tuple[str, str]
    options: CountOptions
    totals: CountTotals
    frames: int = 0
    elapsed_s: float = 0.0


def stream_id_for(path: Path, camera_id: str, start_ms: int, fps: float | None) -> str:
    """Deterministic stream id: the same file, camera, start and rate give the same event ids."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"camcount-count:{camera_id}:{path.resolve()}:{start_ms}:{fps}").hex


class OfflineCounter:
    """Counts one camera's video with ``detector`` and a ``CountingProcessor``."""

    def __init__(self, settings: Settings, camera: CameraConfig, detector: Detector,
                 class_names: Callable[[str, str], Sequence[str]], options: CountOptions) -> None:
        others = [c for c in settings.cameras if c.id != camera.id]
        self.settings = settings.model_copy(update={"cameras": [*others, camera]})
        self.camera = camera
        self.detector = detector
        self.options = options
        self.processor = CountingProcessor(self.settings, class_names, settings.counting.tracker_params())
        self.codec: Codec = default_codec()

    def run(self, path: Path, on_frame: Callable[[FrameResult], None] | None = None) -> CountReport:
        """Count ``path`` from its first frame; ``on_frame`` sees every frame in order."""
        opts = self.options
        start_ms = opts.start_ms if opts.start_ms is not None else file_start_ms(path)
        opts = replace(opts, start_ms=start_ms)
        stream_id = stream_id_for(path, self.camera.id, start_ms, opts.fps)
        report = CountReport(self.camera, (self.detector.name, self.detector.version), opts, CountTotals())
        state: dict[str, Any] | None = None
        started = time.perf_counter()
        frames = prefetch(sample_frames(path, opts), 2 * opts.batch_size)
        try:
            for batch in batched(frames, opts.batch_size):
                for result in self._count_batch(batch, stream_id, state):
                    state = result.output.state
                    report.totals.add(result.output.records)
                    report.frames += 1
                    if on_frame is not None:
                        on_frame(result)
        finally:
            frames.close()  # stops the decode thread and closes the video, also on errors
        report.elapsed_s = time.perf_counter() - started
        return report

    def _count_batch(self, batch: list[SampledFrame], stream_id: str,
                     state: dict[str, Any] | None) -> Iterator[FrameResult]:
        t0 = time.perf_counter()
        detections = self.detector.detect_batch([f.model_input for f in batch])
        inference_ms = (time.perf_counter() - t0) * 1000
        model = (self.detector.name, self.detector.version)
        for frame, dets in zip(batch, detections, strict=True):
            height, width = frame.model_input.shape[:2]
            header = dict(camera_id=self.camera.id, stream_id=stream_id, seq=frame.seq,
                          capture_ts_ms=frame.capture_ts_ms, width=width, height=height)
            record = detections_record(header, dets, model, inference_ms, len(batch))
            # Through the wire format, as the agent gets it (float32 boxes and scores).
            record = self.codec.decode_as(self.codec.encode(DETECTIONS, record), DETECTIONS)
            output = self.processor.process(record, state)
            state = output.state
            yield FrameResult(frame, record, output)


def registry_class_names(registry: ModelRegistry) -> Callable[[str, str], Sequence[str]]:
    """``(name, version) -> class names``, as the counter app looks them up (cached)."""

    @cache
    def names(name: str, version: str) -> tuple[str, ...]:
        return registry.class_names(registry.get(name, version))

    return names


def expected_frames(video: VideoInfo, options: CountOptions) -> int | None:
    """About how many frames ``sample_frames`` yields (for a progress bar); None if unknown."""
    duration = video.duration_s or (video.frames / video.fps if video.fps else 0.0)
    if options.end_s is not None:
        duration = min(duration, options.end_s) if duration else options.end_s
    if not duration:
        return None
    rate = video.fps if options.fps is None else min(options.fps, video.fps or options.fps)
    return max(1, math.ceil(duration * rate)) if rate else None
