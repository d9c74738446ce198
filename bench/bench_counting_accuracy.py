"""Counting accuracy on the sample clips: camcount vs ground truth, and vs supervision.

For each clip of ``shared/data/videos`` with ground truth in its PROVENANCE.md, and for
every frame and ``--fps 10``, this runs ``camcount count``'s path (``OfflineCounter``: ingest's
sampling and JPEG round trip, the registry model, ``CountingProcessor``) and prints ground
truth, counted and error per direction. The error of a run is |in - gt_in| + |out - gt_out|;
the total error is summed over runs as a share of the ground-truth crossings (target <= 3 %).

When supervision (PyPI, not a camcount dependency) is importable, the very same Detections
records are fed to its ByteTrack (defaults, ``frame_rate`` = the sampled rate) and LineZone
(bottom-centre anchor, the same segment), after keeping only the clip's classes as its
tutorials do. LineZone counts every crossing, so it is compared with the raw crossing
events of the ground truth; its crossings reduced to one per (track, direction) are compared
with the once-per-direction ground truth that camcount's rule implements.

    .venv/bin/pip install 'supervision==0.30.9'   # the last release with sv.ByteTrack
    .venv/bin/python bench/bench_counting_accuracy.py
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.codec import COUNT_EVENT
from pipeline.config import Settings, load_config, shared_dir
from pipeline.counting import offline
from pipeline.inference.detector import load_detector
from pipeline.inference.registry import registry_from_settings


@dataclass(frozen=True)
class Clip:
    file: str
    line: tuple[float, float, float, float]
    classes: tuple[str, ...]
    gt_once: tuple[int, int]  # (in, out), each track counted at most once per direction
    gt_raw: tuple[int, int]  # (in, out), every crossing event
    #: (0-based frame, direction) of each once-per-direction crossing: the first crossing of
    #: each (gt id, direction) pair, or of each vehicle.
    gt_events: tuple[tuple[int, str], ...]
    frame_ms: float  # one source frame, to turn frame numbers into media time


# Numbers and event frames from shared/data/videos/PROVENANCE.md.
CLIPS = (
    Clip("street_cars_approaching.mp4", (180, 200, 560, 200), ("car", "motorcycle", "bus", "truck"), (8, 0), (8, 0),
         tuple((f, "in") for f in (10, 67, 118, 167, 226, 408, 466, 701)), 1000 / 24.0),
    Clip("pets09_s2l1_pedestrians.avi", (320, 576, 320, 0), ("person",), (11, 14), (14, 18),
         tuple((f, "in") for f in (8, 93, 301, 321, 333, 339, 586, 602, 667, 687, 730))
         + tuple((f, "out") for f in (68, 166, 187, 228, 265, 289, 302, 500, 536, 539, 577, 654, 697, 762)),
         100.0),
)
#: A counted crossing matches a ground-truth one of the same direction this close in media time.
MATCH_WINDOW_MS = 1500
MODES: tuple[tuple[str, float | None], ...] = (("every frame", None), ("--fps 10", 10.0))


#: A crossing: (ms of media time, direction).
Event = tuple[float, str]


@dataclass
class Run:
    clip: Clip
    mode: str
    frames: int
    events: list[Event]
    seconds: float
    records: list[dict[str, Any]]
    size: tuple[int, int]
    fps: float


def clip_camera(settings: Settings, video: offline.VideoInfo, clip: Clip, names: Any) -> Any:
    """The camera counting ``clip`` with its PROVENANCE line only (a camera the config has for
    this clip would add its own rules and count every crossing again)."""
    return offline.camera_for_video(settings.model_copy(update={"cameras": []}), video, None, [clip.line],
                                    list(clip.classes), names)


def count_clip(settings: Settings, detector: Any, class_names: Any, clip: Clip, mode: str,
               fps: float | None, max_width: int | None = None) -> Run:
    video = offline.probe(shared_dir() / "data" / "videos" / clip.file)
    names = class_names(detector.name, detector.version)
    camera = clip_camera(settings, video, clip, names)
    options = replace(offline.CountOptions.for_camera(settings, camera), fps=fps, start_ms=0, max_width=max_width)
    records: list[dict[str, Any]] = []
    events: list[Event] = []

    def keep(result: offline.FrameResult) -> None:
        records.append(result.record)
        events.extend((float(v["capture_ts_ms"]), v["direction"]) for name, v in result.output.records
                      if name == COUNT_EVENT)

    report = offline.OfflineCounter(settings, camera, detector, class_names, options).run(video.path, keep)
    return Run(clip, mode, report.frames, events, report.elapsed_s, records, (video.width, video.height),
               fps or video.fps)


def supervision_events(run: Run, class_ids: Sequence[int]) -> tuple[list[Event], list[Event]]:
    """(every crossing, the first per track and direction) of sv.ByteTrack + sv.LineZone on ``run``'s boxes."""
    import supervision as sv

    width, height = run.size
    x1, y1, x2, y2 = run.clip.line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ByteTrack is deprecated in favour of `trackers`
        tracker = sv.ByteTrack(frame_rate=run.fps)
    zone = sv.LineZone(sv.Point(x1, y1), sv.Point(x2, y2), triggering_anchors=[sv.Position.BOTTOM_CENTER])
    to_ours = {"in": "out", "out": "in"} if _supervision_in_is_our_out(run.clip.line) else {"in": "in", "out": "out"}
    raw: list[Event] = []
    first: dict[tuple[int, str], float] = {}
    for rec in run.records:
        boxes = [b for b in rec["boxes"] if b["class_id"] in class_ids]
        xyxy = np.array([[b["x1"] * width, b["y1"] * height, b["x2"] * width, b["y2"] * height] for b in boxes],
                        np.float32).reshape(-1, 4)
        dets = sv.Detections(xyxy=xyxy, confidence=np.array([b["score"] for b in boxes], np.float32),
                             class_id=np.array([b["class_id"] for b in boxes], int))
        tracked = tracker.update_with_detections(dets)
        crossed_in, crossed_out = zone.trigger(tracked)
        for mask, theirs in ((crossed_in, "in"), (crossed_out, "out")):
            for track_id in tracked.tracker_id[mask]:
                raw.append((float(rec["capture_ts_ms"]), to_ours[theirs]))
                first.setdefault((int(track_id), to_ours[theirs]), float(rec["capture_ts_ms"]))
    return raw, [(t, d) for (_, d), t in sorted(first.items(), key=lambda kv: kv[1])]


def _supervision_in_is_our_out(line: tuple[float, float, float, float]) -> bool:
    """Whether LineZone calls 'in' what camcount calls 'out' for this segment (asked, not assumed):
    one box walked from the segment's left (camcount's 'in' starts there) to its right."""
    import supervision as sv

    x1, y1, x2, y2 = line
    length = float(np.hypot(x2 - x1, y2 - y1))
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length  # towards the segment's right
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    zone = sv.LineZone(sv.Point(x1, y1), sv.Point(x2, y2), triggering_anchors=[sv.Position.BOTTOM_CENTER])
    for step in (-30, -20, -10, 10, 20, 30):
        bx, by = mx + step * nx, my + step * ny  # bottom-centre of the box
        dets = sv.Detections(xyxy=np.array([[bx - 5, by - 20, bx + 5, by]], np.float32),
                             confidence=np.array([0.9]), class_id=np.array([0]), tracker_id=np.array([1]))
        zone.trigger(dets)
    if (zone.in_count, zone.out_count) not in ((1, 0), (0, 1)):
        raise RuntimeError(f"supervision direction probe counted in={zone.in_count} out={zone.out_count}")
    return zone.out_count == 1


def totals(events: Sequence[Event]) -> tuple[int, int]:
    return sum(1 for _, d in events if d == "in"), sum(1 for _, d in events if d == "out")


def error(counted: Sequence[int], truth: Sequence[int]) -> int:
    return abs(counted[0] - truth[0]) + abs(counted[1] - truth[1])


def match(counted: Sequence[Event], truth: Sequence[Event], window_ms: float = MATCH_WINDOW_MS) -> tuple[int, int, int]:
    """(matched, missed, extra): each true crossing takes the nearest unused counted one of its
    direction within ``window_ms``."""
    used: set[int] = set()
    matched = 0
    for t_true, direction in sorted(truth):
        near = [(abs(t - t_true), i) for i, (t, d) in enumerate(counted)
                if d == direction and i not in used and abs(t - t_true) <= window_ms]
        if near:
            used.add(min(near)[1])
            matched += 1
    return matched, len(truth) - matched, len(counted) - matched


def _pair(values: Sequence[int]) -> str:
    return f"{values[0]}/{values[1]}"


def _cells(events: Sequence[Event], truth_counts: tuple[int, int], truth_events: Sequence[Event] | None) -> list[str]:
    counted = totals(events)
    cells = [_pair(counted), str(error(counted, truth_counts))]
    if truth_events is not None:
        cells.append("{}/{}/{}".format(*match(events, truth_events)))
    return cells


def run_all(settings: Settings, use_supervision: bool, max_width: int | None = None) -> list[list[str]]:
    registry = registry_from_settings(settings)
    name, _, version = settings.models.primary.partition(":")
    detector = load_detector(registry, name, version, settings.inference.session, settings.inference.decode)
    class_names = offline.registry_class_names(registry)
    header = ["clip", "sampling", "frames", "GT", "camcount", "err", "match/miss/extra", "s"]
    if use_supervision:
        header += ["GT raw", "sv raw", "err", "sv once", "err", "match/miss/extra"]
    rows = [header]
    for clip in CLIPS:
        truth = [(f * clip.frame_ms, d) for f, d in clip.gt_events]
        for mode, fps in MODES:
            run = count_clip(settings, detector, class_names, clip, mode, fps, max_width)
            row = [clip.file.split(".")[0], mode, str(run.frames), _pair(clip.gt_once)]
            row += _cells(run.events, clip.gt_once, truth) + [f"{run.seconds:.1f}"]
            if use_supervision:
                ids = [class_names(name, version).index(c) for c in clip.classes]
                sv_raw, sv_once = supervision_events(run, ids)
                row += [_pair(clip.gt_raw)] + _cells(sv_raw, clip.gt_raw, None) + _cells(sv_once, clip.gt_once, truth)
            print(" | ".join(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="camcount config (tracker, model, inference settings)")
    parser.add_argument("--no-supervision", action="store_true", help="skip the supervision comparison")
    parser.add_argument("--max-width", type=int, help="downscale frames as a camera's max_width does")
    args = parser.parse_args()
    settings = load_config(args.config)
    sv_version = None if args.no_supervision else _supervision_version()
    print(f"model {settings.models.primary}; line and ground truth from PROVENANCE.md; counts in/out; "
          f"err = |in - gt_in| + |out - gt_out|; match/miss/extra: crossings matched to ground-truth ones "
          f"within {MATCH_WINDOW_MS} ms; supervision {sv_version or 'not used'}; frames at most "
          f"{args.max_width or 'full'} wide", flush=True)
    rows = run_all(settings, sv_version is not None, args.max_width)
    print()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    _summary(rows, sv_version is not None)


def _summary(rows: list[list[str]], with_sv: bool) -> None:
    body = rows[1:]
    gt = sum(sum(int(v) for v in r[3].split("/")) for r in body)
    ours = sum(int(r[5]) for r in body)
    print(f"\ncamcount total error: {ours} of {gt} ground-truth crossings ({100 * ours / gt:.1f} %)")
    if with_sv:
        gt_raw = sum(sum(int(v) for v in r[8].split("/")) for r in body)
        raw, once = sum(int(r[10]) for r in body), sum(int(r[12]) for r in body)
        print(f"supervision ByteTrack + LineZone: every crossing {raw} of {gt_raw} ({100 * raw / gt_raw:.1f} %); "
              f"once per track and direction {once} of {gt} ({100 * once / gt:.1f} %)")


def _supervision_version() -> str | None:
    try:
        import supervision as sv
    except ImportError:
        return None
    if not hasattr(sv, "ByteTrack"):
        print(f"supervision {sv.__version__} has no ByteTrack (removed in 0.31): install supervision==0.30.9")
        return None
    return sv.__version__


if __name__ == "__main__":
    main()
