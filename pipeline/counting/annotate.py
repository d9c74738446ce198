"""Drawing what ``camcount count`` saw: boxes, track ids, lines, zones and running counts.

``Annotator`` takes each counted frame (``offline.FrameResult``) and writes the frame with
its overlay to a sink: an MP4 (``VideoSink``) or PNG snapshots in a folder
(``SnapshotSink``). The processor's records carry counts but not track boxes, so the
annotator replays the frame's Detections record through its own ``CameraCounter`` built
from the same rules and tracker settings; the counter is deterministic, and every frame's
count events are checked against the processor's, so the picture shows the tracks that
were counted, not a look-alike.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol, Sequence

import av
import cv2
import numpy as np

from pipeline.codec import OCCUPANCY_SAMPLE
from pipeline.counting.counter import CameraCounter
from pipeline.counting.geometry import Anchor, anchor_points
from pipeline.counting.offline import CountTotals, FrameResult
from pipeline.counting.params import TrackerParams
from pipeline.counting.processor import ALL_CLASSES, detections_from_record
from pipeline.counting.rules import LineRule, Rule, ZoneRule
from pipeline.counting.tracker import Tracks
from pipeline.exceptions import CamcountError, ConfigError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov")
#: Video encoders tried in order: the first this PyAV's FFmpeg has is used.
VIDEO_CODECS = ("libx264", "h264", "mpeg4")
#: A rule's colour stays "counted" for this long after a count, so a crossing is visible.
FLASH_MS = 600
#: PNG snapshots: every frame with a count, and one at least this often.
SNAPSHOT_EVERY_MS = 10_000

_LINE_BGR = (0, 215, 255)
_FLASH_BGR = (60, 220, 60)
_ZONE_BGR = (255, 160, 40)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


class FrameSink(Protocol):
    def write(self, image: np.ndarray, t_ms: int, counted: bool) -> None:
        """Take one annotated frame, ``t_ms`` after the first, ``counted`` if it counted something."""

    def close(self) -> None:
        """Finish the output (flush the encoder, write the last snapshot)."""


class VideoSink:
    """An MP4 (or MKV/MOV) with the frames at their media times (h264, else mpeg4)."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._size = (width - width % 2, height - height % 2)  # yuv420p needs even sizes
        self._container = av.open(str(path), mode="w")
        codec = next(c for c in VIDEO_CODECS if c in av.codecs_available)
        self._stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = self._size
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1000)
        if codec == "libx264":
            self._stream.options = {"crf": "23", "preset": "veryfast"}
        self._last_pts = -1

    def write(self, image: np.ndarray, t_ms: int, counted: bool) -> None:
        width, height = self._size
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="bgr24")
        frame.pts = max(t_ms, self._last_pts + 1)
        frame.time_base = Fraction(1, 1000)
        self._last_pts = frame.pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


class SnapshotSink:
    """PNGs in a folder: each frame that counted something, one every ``every_ms``, and the last."""

    def __init__(self, folder: Path, every_ms: int = SNAPSHOT_EVERY_MS) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.every_ms = every_ms
        self.written: list[Path] = []
        self._next_ms = 0
        self._last: tuple[np.ndarray, int] | None = None

    def write(self, image: np.ndarray, t_ms: int, counted: bool) -> None:
        if counted or t_ms >= self._next_ms:
            self._save(image, t_ms)
            self._next_ms = t_ms + self.every_ms
            self._last = None
        else:
            self._last = (image, t_ms)

    def close(self) -> None:
        if self._last is not None:
            self._save(*self._last)

    def _save(self, image: np.ndarray, t_ms: int) -> None:
        path = self.folder / f"t{t_ms:08d}ms.png"
        if not cv2.imwrite(str(path), image):
            raise CamcountError(f"{path}: could not write the snapshot")
        self.written.append(path)


def open_sink(target: Path, width: int, height: int, fps: float) -> FrameSink:
    """A video for a path ending in a video suffix, PNG snapshots for a folder (``dir/`` or no suffix)."""
    if target.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(target, width, height, fps)
    if target.suffix and not target.is_dir():
        raise ConfigError(f"--annotate {target}: give a {'/'.join(VIDEO_SUFFIXES)} file or a folder for PNGs")
    return SnapshotSink(target)


class Annotator:
    """Draws each counted frame and hands it to ``sink``."""

    def __init__(self, sink: FrameSink, rules: Sequence[Rule], class_names: Sequence[str],
                 params: TrackerParams | None = None) -> None:
        self.sink = sink
        self.rules = tuple(rules)
        self.class_names = tuple(class_names)
        self._counter = CameraCounter(rules, params)
        self._totals = CountTotals()
        self._occupancy: dict[str, int] = {}
        self._flash_until_ms: dict[str, int] = {}
        self._first_ts_ms: int | None = None

    def add(self, result: FrameResult) -> None:
        rec = result.record
        replay = self._counter.apply(rec["seq"], rec["capture_ts_ms"], detections_from_record(rec),
                                     stream_id=rec["stream_id"])
        events = self._totals.add(result.output.records)
        if sorted(e.event_id for e in replay.events) != sorted(e["event_id"] for e in events):
            raise CamcountError(f"annotation: frame {rec['seq']} counted differently from the processor")
        ts_ms = rec["capture_ts_ms"]
        self._first_ts_ms = ts_ms if self._first_ts_ms is None else self._first_ts_ms
        for event in events:
            self._flash_until_ms[event["rule"]] = ts_ms + FLASH_MS
        for name, value in result.output.records:
            if name == OCCUPANCY_SAMPLE and value["class_name"] == ALL_CLASSES:
                self._occupancy[value["rule"]] = value["occupancy"]
        image = result.frame.image.copy()
        self._draw(image, replay.tracks, {e["track_id"]: e["direction"] for e in events}, ts_ms)
        self.sink.write(image, ts_ms - self._first_ts_ms, counted=bool(events))

    def close(self) -> None:
        self.sink.close()

    def _draw(self, image: np.ndarray, tracks: Tracks, counted: dict[int, str], ts_ms: int) -> None:
        for rule in self.rules:
            flash = self._flash_until_ms.get(rule.name, 0) > ts_ms
            if isinstance(rule, LineRule):
                draw_line_rule(image, rule, flash)
            else:
                draw_zone(image, rule, self._occupancy.get(rule.name, 0), flash)
        anchors = sorted({r.anchor for r in self.rules}, key=lambda a: a.value) or [Anchor.BOTTOM_CENTER]
        draw_tracks(image, tracks, self.class_names, counted, anchors)
        draw_panel(image, self._panel_lines(ts_ms))

    def _panel_lines(self, ts_ms: int) -> list[str]:
        t_s = (ts_ms - (self._first_ts_ms or ts_ms)) / 1000
        lines = [f"t={t_s:6.1f}s"]
        for rule in self.rules:
            directions = ("in", "out") if isinstance(rule, LineRule) else ("enter", "exit")
            parts = []
            for direction in directions:
                by_class = {c: n for (r, c, d), n in sorted(self._totals.counts.items())
                            if r == rule.name and d == direction}
                detail = " ".join(f"{c}:{n}" for c, n in by_class.items())
                parts.append(f"{direction} {sum(by_class.values())}" + (f" ({detail})" if detail else ""))
            if isinstance(rule, ZoneRule):
                parts.append(f"now {self._occupancy.get(rule.name, 0)}")
            lines.append(f"{rule.name}: " + "  ".join(parts))
        return lines


def _px(image: np.ndarray, point: Sequence[float]) -> tuple[int, int]:
    height, width = image.shape[:2]
    return int(round(point[0] * width)), int(round(point[1] * height))


def _label(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int],
           scale: float = 0.45) -> None:
    """Text on a filled box (readable on any background), kept inside the image."""
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    x = min(max(org[0], 0), max(image.shape[1] - w - 2, 0))
    y = min(max(org[1], h + 2), image.shape[0] - base)
    cv2.rectangle(image, (x, y - h - 2), (x + w + 2, y + base), colour, cv2.FILLED)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    text_colour = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(image, text, (x + 1, y - 1), _FONT, scale, text_colour, 1, cv2.LINE_AA)


def draw_line_rule(image: np.ndarray, rule: LineRule, flash: bool = False) -> None:
    """The directed segment (arrowhead at its end), its name, and an arrow towards the ``in`` side."""
    start, end = _px(image, rule.start), _px(image, rule.end)
    colour = _FLASH_BGR if flash else _LINE_BGR
    cv2.arrowedLine(image, start, end, colour, 4 if flash else 2, cv2.LINE_AA, tipLength=0.04)
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = max(np.hypot(dx, dy), 1e-9)
    normal = (-dy / length, dx / length)  # points to the segment's right: where "in" crossings go
    mid = ((start[0] + end[0]) // 2, (start[1] + end[1]) // 2)
    tip = (int(mid[0] + 25 * normal[0]), int(mid[1] + 25 * normal[1]))
    cv2.arrowedLine(image, mid, tip, colour, 2, cv2.LINE_AA, tipLength=0.35)
    _label(image, "in", (tip[0] + 3, tip[1] + 5), colour)
    _label(image, rule.name, (start[0] + 4, start[1] - 6), colour)


def draw_zone(image: np.ndarray, rule: ZoneRule, occupancy: int, flash: bool = False) -> None:
    """The polygon, lightly filled, with its name and current occupancy."""
    points = np.array([_px(image, p) for p in rule.polygon], np.int32)
    colour = _FLASH_BGR if flash else _ZONE_BGR
    overlay = image.copy()
    cv2.fillPoly(overlay, [points], colour)
    cv2.addWeighted(overlay, 0.15, image, 0.85, 0, dst=image)
    cv2.polylines(image, [points], True, colour, 2, cv2.LINE_AA)
    _label(image, f"{rule.name}: {occupancy}", tuple(points[0]), colour)


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated colour per track id."""
    hue = (track_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 235]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_tracks(image: np.ndarray, tracks: Tracks, class_names: Sequence[str], counted: dict[int, str],
                anchors: Sequence[Anchor] = (Anchor.BOTTOM_CENTER,)) -> None:
    """Each track's box, ``#id class score``, and its anchor point(s); a track counted now says so."""
    height, width = image.shape[:2]
    scale = np.array([width, height, width, height], np.float32)
    for i, track_id in enumerate(tracks.track_ids.tolist()):
        x1, y1, x2, y2 = (tracks.xyxy[i] * scale).round().astype(int).tolist()
        colour = track_colour(track_id)
        thick = 3 if track_id in counted else 2
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        class_id = int(tracks.class_ids[i])
        name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        text = f"#{track_id} {name} {tracks.scores[i]:.2f}"
        if track_id in counted:
            text += f" +{counted[track_id]}"
        _label(image, text, (x1, y1 - 3), colour)
        for anchor in anchors:
            point = anchor_points(tracks.xyxy[i : i + 1], anchor)[0]
            cv2.circle(image, _px(image, point), 4, colour, cv2.FILLED, cv2.LINE_AA)


def draw_panel(image: np.ndarray, lines: Sequence[str]) -> None:
    """Running counts, top-left, on a dark translucent box."""
    sizes = [cv2.getTextSize(text, _FONT, 0.5, 1)[0] for text in lines]
    width = max(w for w, _ in sizes) + 12
    height = sum(h + 8 for _, h in sizes) + 6
    region = image[:height, :width]
    region[:] = (region * 0.35).astype(image.dtype)
    y = 4
    for text, (_, h) in zip(lines, sizes):
        y += h + 8
        cv2.putText(image, text, (6, y - 4), _FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
