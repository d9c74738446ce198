"""Per-frame CPU cost of the inference worker's preprocessing, against OpenCV's decoder.

On a CPU host every millisecond spent decoding a frame is taken from the model, so this
prints CPU ms per frame (thread CPU time, less sensitive to a busy host than wall time)
for each clip, interleaving the candidates pass by pass:

- ``cv2.imdecode`` (the baseline) and ``decode_image`` (TurboJPEG via simplejpeg, what
  the worker uses), with their ratio, and whether both give the same pixels;
- ``letterbox_into`` of the decoded frame into a batch row (resize, pad, HWC -> CHW).

Frames are JPEG-encoded as ingest encodes them (cv2.imencode at ``--quality``).

    .venv/bin/python bench/bench_decode.py --frames 64 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from clips import read_jpegs
from pipeline.config import shared_dir
from pipeline.inference.preprocess import decode_image, letterbox_into

CLIPS = ("pets09_s2l1_pedestrians.avi", "street_cars_approaching.mp4")


def cpu_ms_per_item(fn: Callable[[object], object], items: list) -> float:
    start = time.thread_time()
    for item in items:
        fn(item)
    return 1000 * (time.thread_time() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (ingest's default)")
    parser.add_argument("--input-size", type=int, default=416, help="model input side (YOLOX-Nano: 416)")
    parser.add_argument("--videos", type=Path, default=shared_dir() / "data/videos")
    args = parser.parse_args()

    row = np.empty((3, args.input_size, args.input_size), np.float32)
    baseline = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # noqa: E731
    print(f"CPU ms per frame, median of {args.repeats} interleaved passes over {args.frames} frames")
    print(f"{'clip':<32} {'size':>9} {'cv2.imdecode':>12} {'decode_image':>12} {'ratio':>6} "
          f"{'same':>5} {'letterbox':>9}")
    for clip in CLIPS:
        _, jpegs = read_jpegs(args.videos / clip, args.frames, args.quality)
        images = [decode_image(data) for data in jpegs]
        same = all(np.array_equal(baseline(data), image) for data, image in zip(jpegs, images))
        timings: dict[str, list[float]] = {"base": [], "ours": [], "letterbox": []}
        for _ in range(args.repeats):
            timings["base"].append(cpu_ms_per_item(baseline, jpegs))
            timings["ours"].append(cpu_ms_per_item(decode_image, jpegs))
            timings["letterbox"].append(cpu_ms_per_item(lambda image: letterbox_into(image, row), images))
        base, ours, box = (statistics.median(timings[k]) for k in ("base", "ours", "letterbox"))
        size = f"{images[0].shape[1]}x{images[0].shape[0]}"
        print(f"{clip:<32} {size:>9} {base:>12.2f} {ours:>12.2f} {base / ours:>5.2f}x {str(same):>5} {box:>9.2f}")


if __name__ == "__main__":
    main()
