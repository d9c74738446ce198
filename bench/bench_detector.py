"""Detector throughput: bare onnxruntime vs ``OnnxDetector`` end to end, one process.

Bare: ``session.run`` on tensors letterboxed in advance (the ceiling).
End to end: JPEG bytes -> ``decode_image`` -> ``detect_batch`` (letterbox, run,
decode + NMS), as an inference worker does per batch. Both use the same
session, at batch 1 and batch N, so the printed ratios are measured in one run
on one machine. Each figure is the best of ``--repeats`` passes over the frames,
which damps noise from a shared host. With several ``--models`` (e.g. a float version
and its INT8 variant from ``camcount models quantize``) each is measured in turn in the
same process, and each later one's figures are also printed as ratios to the first's.

    .venv/bin/python bench/bench_detector.py --batch 8 --frames 64
    .venv/bin/python bench/bench_detector.py --registry my-registry.yaml --models yolox-nano:1,yolox-nano:1-int8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from clips import read_jpegs
from pipeline.inference.detector import OnnxDetector, load_detector
from pipeline.inference.preprocess import decode_image
from pipeline.inference.registry import ModelRegistry, default_models_dir
from pipeline.inference.session import SessionSettings


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def best_fps(run_pass: Callable[[], int], repeats: int) -> float:
    """Frames per second of the fastest of ``repeats`` passes (after one warm-up)."""
    run_pass()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        frames = run_pass()
        best = max(best, frames / (time.perf_counter() - start))
    return best


def bare_pass(detector: OnnxDetector, frames: list[np.ndarray], batch: int):
    tensors = [detector.preprocess(group).tensor.copy() for group in chunks(frames, batch)]
    names, feed = [detector.spec.output.name], detector.spec.input.name

    def run() -> int:
        for tensor in tensors:
            detector.session.run(names, {feed: tensor})
        return len(frames)

    return run


def end_to_end_pass(detector: OnnxDetector, jpegs: list[bytes], batch: int):
    def run() -> int:
        for group in chunks(jpegs, batch):
            detector.detect_batch([decode_image(data) for data in group])
        return len(jpegs)

    return run


def measure(detector: OnnxDetector, frames: list[np.ndarray], jpegs: list[bytes], batch: int,
            repeats: int) -> dict[tuple[str, int], float]:
    """frames/s of the bare run and of the end-to-end path at batch 1 and ``batch``."""
    results = {}
    for size in (1, batch):
        results[("bare", size)] = best_fps(bare_pass(detector, frames, size), repeats)
        results[("e2e", size)] = best_fps(end_to_end_pass(detector, jpegs, size), repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="intra_op threads, 0 = all")
    parser.add_argument("--providers", default="auto")
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--models", default="yolox-nano:1", help="NAME:VER[,NAME:VER...]; ratios are to the first")
    parser.add_argument("--registry", type=Path, help="registry file (default: models/registry.yaml)")
    args = parser.parse_args()

    models_dir = default_models_dir()
    video = args.video or models_dir.parent / "data/videos/pets09_s2l1_pedestrians.avi"
    settings = SessionSettings(providers=args.providers, intra_op_num_threads=args.threads)
    registry = ModelRegistry.load(args.registry, models_dir=models_dir)
    detectors = [load_detector(registry, *key.split(":", 1), settings) for key in args.models.split(",")]
    frames, jpegs = read_jpegs(video, args.frames, quality=90)
    h, w = frames[0].shape[:2]
    n = args.batch
    baseline: dict[tuple[str, int], float] = {}
    for detector in detectors:
        print(f"model {detector.name}:{detector.version} on {detector.session.get_providers()[0]}, "
              f"{len(frames)} frames {w}x{h}, intra_op_num_threads={args.threads or 'default'}")
        results = measure(detector, frames, jpegs, n, args.repeats)
        for (kind, batch), fps in results.items():
            label = "bare session.run" if kind == "bare" else "detect_batch(JPEG+letterbox+run+NMS)"
            print(f"  {label:38s} batch {batch:2d}: {fps:7.1f} frames/s  {1000 / fps:6.2f} ms/frame")
        print(f"  ratio e2e/bare  batch 1: {results[('e2e', 1)] / results[('bare', 1)]:.2f}"
              f"   batch {n}: {results[('e2e', n)] / results[('bare', n)]:.2f}")
        print(f"  ratio batch {n}/batch 1  bare: {results[('bare', n)] / results[('bare', 1)]:.2f}"
              f"   e2e: {results[('e2e', n)] / results[('e2e', 1)]:.2f}")
        if baseline:
            print(f"  ratio to {detectors[0].name}:{detectors[0].version}: " + "   ".join(
                f"{kind} batch {batch} {fps / baseline[(kind, batch)]:.2f}" for (kind, batch), fps in results.items()))
        else:
            baseline = results


if __name__ == "__main__":
    main()
