"""Counter throughput, Kafka to Kafka, against its counting step alone on the same records.

The records are real: YOLOX-Nano's detections of the pets09 clip (every frame, through
``camcount count``'s path, once), replayed as ``--cameras`` cameras with the clip's line rule.

- bare: ``CountingProcessor.process`` on every record in order, each camera's state in a
  dict: what the counter does per record, without Kafka, faust or the changelog;
- counter: the records pre-produced to a fresh ``detections`` topic, then ``camcount
  counter`` started (faust, the changelog table, commits after the events are stored);
  timed by the broker's timestamps from its first output record to the heartbeat of each
  camera's last frame, so start-up and table recovery are left out.

Prints records/s of each, and the ratio counter / bare, for ``--repeats`` counter runs
(bare is timed just before each).

    .venv/bin/python bench/bench_counter.py --cameras 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from backlog import produce_all
from bench_counting_accuracy import CLIPS, clip_camera
from pipeline.codec import DETECTIONS, HEARTBEAT, default_codec
from pipeline.config import Settings, load_config, shared_dir
from pipeline.counting import offline
from pipeline.counting.processor import CountingProcessor
from pipeline.inference.detector import load_detector
from pipeline.inference.registry import registry_from_settings
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config
from pipeline.launcher import write_config

CLIP = next(c for c in CLIPS if c.file.startswith("pets09"))


def clip_records(settings: Settings) -> tuple[list[dict[str, Any]], Any, Any]:
    """The clip's Detections records (decoded, as the counter gets them), its camera, class names."""
    registry = registry_from_settings(settings)
    name, _, version = settings.models.primary.partition(":")
    detector = load_detector(registry, name, version, settings.inference.session, settings.inference.decode)
    class_names = offline.registry_class_names(registry)
    video = offline.probe(shared_dir() / "data" / "videos" / CLIP.file)
    camera = clip_camera(settings, video, CLIP, class_names(detector.name, detector.version))
    options = replace(offline.CountOptions.for_camera(settings, camera), fps=None, start_ms=0)
    records: list[dict[str, Any]] = []
    offline.OfflineCounter(settings, camera, detector, class_names, options).run(
        video.path, lambda result: records.append(result.record))
    return records, camera, class_names


def as_cameras(records: list[dict[str, Any]], cameras: int) -> list[dict[str, Any]]:
    """Frame by frame, the record of each camera ``bench-0..N-1`` (interleaved, as live cameras are)."""
    return [rec | {"camera_id": f"bench-{k}"} for rec in records for k in range(cameras)]


def bare_rate(settings: Settings, class_names: Any, records: list[dict[str, Any]]) -> float:
    processor = CountingProcessor(settings, class_names, settings.counting.tracker_params())
    state: dict[str, Any] = {}
    start = time.perf_counter()
    for rec in records:
        out = processor.process(rec, state.get(rec["camera_id"]))
        if out.state is not None:
            state[rec["camera_id"]] = out.state
    return len(records) / (time.perf_counter() - start)


def counter_rate(settings: Settings, records: list[dict[str, Any]], workdir: Path) -> float:
    """records/s of a ``camcount counter`` process over ``records`` pre-produced to fresh topics."""
    settings = settings.model_copy(update={"topics": settings.topics.model_copy(
        update={"prefix": f"bench{uuid.uuid4().hex[:8]}."})})
    topics.create_topics(settings)
    codec = default_codec()
    produce_all(settings, topics.name(settings, topics.DETECTIONS),
                ((rec["camera_id"].encode(), codec.encode(DETECTIONS, rec)) for rec in records))
    last_seq = {rec["camera_id"]: rec["seq"] for rec in records}
    config = write_config(settings, workdir / f"{settings.topics.prefix}yaml")
    with open(workdir / f"{settings.topics.prefix}log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "-c", str(config), "counter"],
                                stdout=log, stderr=subprocess.STDOUT)
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topics.name(settings, topics.COUNT_EVENTS)])
    first_ms = last_ms = None
    try:
        deadline = time.monotonic() + 600
        while last_seq and time.monotonic() < deadline and proc.poll() is None:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            ts_ms = msg.timestamp()[1]
            first_ms = ts_ms if first_ms is None else min(first_ms, ts_ms)
            name, value = codec.decode(msg.value())
            if name == HEARTBEAT and last_seq.get(value["camera_id"]) == value["seq"]:
                del last_seq[value["camera_id"]]
                last_ms = ts_ms if last_ms is None else max(last_ms, ts_ms)
    finally:
        consumer.close()
        proc.terminate()
        proc.wait(60)
        topics.delete_topics(settings)  # the counter's changelog too
    if last_seq or first_ms is None or last_ms is None:
        raise RuntimeError(f"the counter did not finish (cameras left: {sorted(last_seq)}; see {workdir})")
    return len(records) / ((last_ms - first_ms) / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, help="camcount config (default: defaults + env)")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = load_config(args.config)
    clip, camera, class_names = clip_records(base)
    cameras = [camera.model_copy(update={"id": f"bench-{k}"}) for k in range(args.cameras)]
    settings = base.model_copy(update={"cameras": cameras})
    records = as_cameras(clip, args.cameras)
    boxes = statistics.mean(len(r["boxes"]) for r in clip)
    print(f"{CLIP.file}: {len(clip)} frames x {args.cameras} cameras = {len(records)} records, "
          f"{boxes:.1f} boxes per record; {settings.topics.partitions} partitions")
    bare, counter = [], []
    with tempfile.TemporaryDirectory(prefix="camcount-bench-counter-") as tmp:
        for _ in range(args.repeats):
            bare.append(bare_rate(settings, class_names, records))
            counter.append(counter_rate(settings, records, Path(tmp)))
            print(f"  bare {bare[-1]:7.0f} records/s   counter {counter[-1]:7.0f} records/s   "
                  f"ratio {counter[-1] / bare[-1]:.2f}", flush=True)
    ratios = [c / b for c, b in zip(counter, bare)]
    print(f"median: bare {statistics.median(bare):.0f}, counter {statistics.median(counter):.0f} records/s, "
          f"ratio {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
