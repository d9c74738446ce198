"""Helpers of the inference worker tests: real pets09 frames in, detections out, workers as
threads or as ``camcount infer`` processes. (No tests here; the ingest worker is not used,
so these tests produce ``Frame`` records themselves.)"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.codec import DETECTIONS, FRAME, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config, producer_config

Key = tuple[str, int]  # (camera_id, seq)


def group(settings: Settings, name: str) -> str:
    """A consumer group of this test only: a group shared across runs waits for the dead
    members of earlier runs (up to the session timeout) on every rebalance."""
    return f"{settings.topics.prefix}{name}"


@lru_cache(maxsize=4)
def clip_jpegs(video: Path, count: int, quality: int = 85) -> tuple[tuple[bytes, int, int], ...]:
    """The first ``count`` frames of ``video`` as (JPEG bytes, width, height), via PyAV + OpenCV."""
    import av
    import cv2

    out = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
            out.append((jpeg, image.shape[1], image.shape[0]))
            if len(out) == count:
                break
    return tuple(out)


def frame_value(camera: str, seq: int, jpeg: bytes, width: int, height: int, **fields: Any) -> bytes:
    record = dict(camera_id=camera, stream_id="test", seq=seq, capture_ts_ms=int(time.time() * 1000),
                  width=width, height=height, data=jpeg)
    record.update(fields)
    return default_codec().encode(FRAME, record)


def produce(settings: Settings, messages: Iterable[tuple[str, bytes]], producer: Producer | None = None) -> int:
    """Produce (key, value) pairs to ``frames`` and wait for the acks; returns how many.
    ``producer``: one kept for many calls (a new one takes about half a second to start)."""
    producer = producer or Producer(producer_config(settings.kafka))
    topic, count = topics.name(settings, topics.FRAMES), 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    assert producer.flush(60) == 0, "frames not acknowledged"
    return count


def produce_clip(settings: Settings, video: Path, count: int, cameras: int, start: int = 0) -> list[Key]:
    """Clip frames ``start..start+count`` spread over ``cameras`` cameras (frame i -> camera
    i % cameras, seq i // cameras); returns their keys."""
    frames = clip_jpegs(video, start + count)[start:]
    keys = [(f"cam-{(start + i) % cameras}", (start + i) // cameras) for i in range(count)]
    produce(settings, ((c, frame_value(c, s, *f)) for (c, s), f in zip(keys, frames)))
    return keys


def read_topic(settings: Settings, topic: str, until: Any = None, timeout_s: float = 60.0,
               idle_s: float | None = None) -> list:
    """Messages of a topic (fresh group, from the start) until ``until(msgs)`` holds, the
    timeout passes, or (with ``idle_s``) nothing new came for that long."""
    consumer = Consumer(consumer_config(settings.kafka, f"test-read-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topics.name(settings, topic)])
    out: list = []
    deadline, last = time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            if until is not None and until(out):
                break
            if idle_s is not None and out and time.monotonic() - last > idle_s:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
            last = time.monotonic()
    finally:
        consumer.close()
    return out


def detections_by_key(msgs: list) -> dict[Key, list[dict]]:
    codec, out = default_codec(), {}
    for msg in msgs:
        record = codec.decode_as(msg.value(), DETECTIONS)
        assert msg.key().decode() == record["camera_id"]
        out.setdefault((record["camera_id"], record["seq"]), []).append(record)
    return out


def read_detections(settings: Settings, expected: Iterable[Key],
                    timeout_s: float = 90.0) -> dict[Key, list[dict]]:
    wanted = set(expected)
    got: dict[Key, list[dict]] = {}

    def complete(msgs: list) -> bool:
        got.clear()
        got.update(detections_by_key(msgs))
        return wanted <= set(got)

    msgs = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= len(wanted) and complete(m),
                      timeout_s=timeout_s)
    return detections_by_key(msgs)


def committed(settings: Settings, group: str) -> dict[int, int]:
    """The group's committed offset per partition of ``frames``."""
    consumer = Consumer(consumer_config(settings.kafka, group))
    topic = topics.name(settings, topics.FRAMES)
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def uncommitted(settings: Settings, group: str) -> dict[int, tuple[int, int]]:
    """Partitions with frames whose committed offset is short of the end: {p: (committed, end)}."""
    done, end = committed(settings, group), end_offsets(settings)
    return {p: (done[p], end[p]) for p in end if end[p] > 0 and done[p] != end[p]}


def end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings.kafka, f"test-{uuid.uuid4().hex[:8]}"))
    topic = topics.name(settings, topics.FRAMES)
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(settings.topics.partitions)}
    finally:
        consumer.close()


class WorkerThread:
    """An ``InferenceWorker`` running in a thread of the test process: ``worker``, or one
    ``build_worker`` makes of ``options``."""

    def __init__(self, settings: Settings, worker: Any = None, **options: Any) -> None:
        from pipeline.inference.build import build_worker

        self.worker = worker or build_worker(settings, **options)
        self.totals: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.totals = self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self.error = exc

    def start(self) -> "WorkerThread":
        self.thread.start()
        return self

    def join(self, timeout_s: float = 120.0) -> dict:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error
        return self.totals


def write_config(path: Path, settings: Settings, **inference: Any) -> Path:
    """A YAML config for ``camcount infer`` with this test's topics, database and overrides."""
    doc = {
        "kafka": {"bootstrap_servers": settings.kafka.bootstrap_servers},
        "topics": {"prefix": settings.topics.prefix, "partitions": settings.topics.partitions},
        "clickhouse": {"host": settings.clickhouse.host, "port": settings.clickhouse.port,
                       "database": settings.clickhouse.database},
        "inference": inference,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def start_worker_process(config: Path, log_path: Path, *args: str) -> subprocess.Popen:
    """``camcount -v infer --config CONFIG ARGS`` with stderr (the log) to ``log_path``."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "-v", "infer", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=log_path.open("w"), text=True)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
