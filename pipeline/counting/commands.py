"""``camcount counter``: the counting stream processor (detections → count-events);
``camcount count``: the same counting on one video file, in one process, without Kafka."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from pipeline import telemetry
from pipeline.cli_types import positive_int
from pipeline.config import Settings


def _counter(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.counting.app import build_app
    from pipeline.inference.registry import registry_from_settings
    from pipeline.kafka.faust_app import serve

    app = build_app(settings, registry_from_settings(settings))
    return serve(settings, "counter", app, getattr(args, "health_port", None))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("counter", help="run the counter: track objects, apply line/zone rules, emit count events")
    telemetry.add_health_option(p)
    p.set_defaults(handler=_counter)
    _register_count(sub)


def line_arg(value: str) -> tuple[float, float, float, float]:
    """``--line X1,Y1,X2,Y2`` in pixels."""
    try:
        x1, y1, x2, y2 = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X1,Y1,X2,Y2 in pixels, got {value!r}") from None
    if (x1, y1) == (x2, y2):
        raise argparse.ArgumentTypeError(f"{value!r}: the two ends must differ")
    return x1, y1, x2, y2


def fps_arg(value: str) -> float:
    """``--fps N``: N > 0, or 0 for every decoded frame."""
    try:
        fps = float(value)
    except ValueError:
        fps = -1.0
    if not 0 <= fps <= 1000:
        raise argparse.ArgumentTypeError(f"expected frames per second (0 = every frame), got {value!r}")
    return fps


def classes_arg(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected class names, e.g. person,car")
    return names


def model_arg(value: str) -> tuple[str, str]:
    name, sep, version = value.partition(":")
    if not (sep and name and version):
        raise argparse.ArgumentTypeError(f"expected NAME:VERSION (e.g. yolox-nano:1), got {value!r}")
    return name, version


def _register_count(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "count",
        help="count a video file in one process: decode, sample, detect, track, count (no Kafka)",
        description="Runs the pipeline's steps on one file with the same code as the distributed path "
                    "(ingest's sampling and JPEG round trip, the registry model, the counter's processor) "
                    "and prints the totals. Rules come from a configured camera (--camera, or the one "
                    "whose source is VIDEO) and/or --line.",
    )
    p.add_argument("video", type=Path, metavar="VIDEO", help="video file (anything FFmpeg reads)")
    # SUPPRESS: without --config here, the top-level ``camcount --config`` value is kept.
    p.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="YAML config file")
    p.add_argument("--camera", metavar="ID", help="count with this configured camera's rules, fps and size")
    p.add_argument("--line", type=line_arg, action="append", default=[], metavar="X1,Y1,X2,Y2",
                   help="add a line rule in pixels of the video (repeatable; named line1, line2, ...); "
                        "'in' is a crossing from the left of the directed segment to its right (y down)")
    p.add_argument("--classes", type=classes_arg, metavar="NAMES",
                   help="count only these model classes, e.g. person,car (applies to every rule)")
    p.add_argument("--fps", type=fps_arg, metavar="N",
                   help="sample to N frames/s by presentation time, as ingest does; 0 = every frame "
                        "(default: the camera's fps, 10 without a configured camera)")
    p.add_argument("--model", type=model_arg, metavar="NAME:VER", help="registry model (default: models.primary)")
    p.add_argument("--batch", type=positive_int, metavar="N",
                   help="frames per model run (default: inference.max_batch)")
    p.add_argument("--end-s", type=float, metavar="S", help="stop after S seconds of video")
    p.add_argument("--raw-frames", action="store_true",
                   help="detect on decoded frames, skipping ingest's JPEG round trip (faster; counts may "
                        "differ slightly from the pipeline's)")
    p.add_argument("--annotate", type=Path, metavar="OUT",
                   help="draw boxes, track ids, rules and running counts into OUT.mp4, or PNG snapshots in OUT/")
    p.add_argument("--json", action="store_true",
                   help='print {"counts": [{"rule", "class", "direction", "count"}, ...]} on stdout')
    p.set_defaults(handler=_count)


def _count(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.counting import offline
    from pipeline.inference.detector import load_detector
    from pipeline.inference.registry import registry_from_settings

    video = offline.probe(args.video)
    registry = registry_from_settings(settings)
    name, version = args.model or model_arg(settings.models.primary)
    class_names = offline.registry_class_names(registry)
    names = class_names(name, version)
    camera = offline.camera_for_video(settings, video, args.camera, args.line, args.classes, names)
    options = offline.CountOptions.for_camera(settings, camera)
    if args.fps is not None:
        options = replace(options, fps=args.fps or None)
    options = replace(options, batch_size=args.batch or options.batch_size, end_s=args.end_s,
                      jpeg_quality=None if args.raw_frames else options.jpeg_quality)
    detector = load_detector(registry, name, version, settings.inference.session, settings.inference.decode)
    counter = offline.OfflineCounter(settings, camera, detector, class_names, options)
    annotator = _annotator(args.annotate, counter, video, names, settings) if args.annotate else None
    progress = Progress(offline.expected_frames(video, options), sys.stderr) if sys.stderr.isatty() else None

    def on_frame(result: offline.FrameResult) -> None:
        if annotator is not None:
            annotator.add(result)
        if progress is not None:
            progress.update()

    try:
        report = counter.run(video.path, on_frame)
    finally:
        if progress is not None:
            progress.close()
        if annotator is not None:
            annotator.close()
    if args.json:
        print(json.dumps({"counts": report.totals.rows()}))
    else:
        print(format_report(report))
    return 0


def _annotator(target: Path, counter: Any, video: Any, names: Any, settings: Settings) -> Any:
    from pipeline.counting.annotate import Annotator, open_sink
    from pipeline.counting.camera_rules import rules_for_camera

    fps = counter.options.fps or video.fps or 10.0
    sink = open_sink(target, video.width, video.height, fps)
    return Annotator(sink, rules_for_camera(counter.camera, names), names, settings.counting.tracker_params())


def format_report(report: Any) -> str:
    """A readable table: one row per rule and class, a column per direction."""
    rate = "every frame" if report.options.fps is None else f"{report.options.fps:g} fps"
    speed = report.frames / report.elapsed_s if report.elapsed_s else 0.0
    lines = [f"camera {report.camera.id}, model {':'.join(report.model)}: {report.frames} frames at {rate} "
             f"in {report.elapsed_s:.1f} s ({speed:.0f} frames/s)", ""]
    rows: list[list[str]] = [["rule", "class", "in", "out", "enter", "exit"]]
    for rule in report.camera.rules:
        counted = sorted({c for (r, c, _d) in report.totals.counts if r == rule.name})
        directions = ("in", "out") if rule.type == "line" else ("enter", "exit")
        for cls in counted or ["-"]:
            cells = {d: str(report.totals.counts.get((rule.name, cls, d), 0)) for d in directions}
            rows.append([rule.name, cls] + [cells.get(d, "") for d in ("in", "out", "enter", "exit")])
    if all(r[4] == r[5] == "" for r in rows[1:]):
        rows = [r[:4] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


class Progress:
    """A one-line progress bar redrawn on ``stream`` (a terminal) at most 10 times a second."""

    def __init__(self, total: int | None, stream: IO[str], width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.done = 0
        self._started = self._drawn = time.monotonic()

    def update(self, frames: int = 1) -> None:
        self.done += frames
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def close(self) -> None:
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            filled = min(self.width, self.width * self.done // self.total)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/~{self.total}"
        else:
            bar = f"{self.done}"
        self.stream.write(f"\rcount {bar} frames  {rate:.0f} frames/s ")
        self.stream.flush()
