"""The counter stream processor through the real broker: detections in, count events out, restartable."""

from __future__ import annotations

import signal
from pathlib import Path

from pipeline.codec import COUNT_EVENT, DETECTIONS, HEARTBEAT, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from tests.kafka_helpers import consume, produce, start_worker, write_config

CAMERAS = [{"id": "cam-a", "source": "unused.mp4",
            "rules": [{"type": "line", "name": "mid", "points": [[0.5, 1.0], [0.5, 0.0]], "classes": ["person"]}]}]


def _walk(camera: str, seqs: range, left_to_right: bool, stream: str = "s1") -> list:
    """One person walking across x = 0.5, one frame per 100 ms."""
    out = []
    n = len(seqs)
    for i, seq in enumerate(seqs):
        x = 0.2 + 0.6 * i / (n - 1)
        x = x if left_to_right else 1.0 - x
        box = dict(class_id=0, score=0.9, x1=x - 0.05, y1=0.4, x2=x + 0.05, y2=0.7)
        out.append((camera, DETECTIONS, dict(
            camera_id=camera, stream_id=stream, seq=seq, capture_ts_ms=1_000_000 + seq * 100, width=640, height=480,
            model_name="yolox-nano", model_version="1", inference_ms=5.0, batch_size=1, boxes=[box])))
    return out


def _events(msgs: list) -> list[dict]:
    codec = default_codec()
    decoded = [codec.decode(m.value()) for m in msgs]
    return [v for name, v in decoded if name == COUNT_EVENT]


def _heartbeat_seqs(msgs: list) -> list[int]:
    codec = default_codec()
    return [v["seq"] for name, v in (codec.decode(m.value()) for m in msgs) if name == HEARTBEAT]


def test_counts_crossings_and_survives_a_restart(kafka_settings: Settings, tmp_path: Path) -> None:
    cfg = write_config(kafka_settings, tmp_path / "camcount.yaml", cameras=CAMERAS)
    det_topic = topics.name(kafka_settings, topics.DETECTIONS)
    out_topic = topics.name(kafka_settings, topics.COUNT_EVENTS)
    worker = start_worker(cfg, "counter", log=tmp_path / "counter-1.log")
    try:
        walk_in = _walk("cam-a", range(0, 20), left_to_right=True)
        produce(kafka_settings, det_topic, walk_in)
        produce(kafka_settings, det_topic, walk_in[5:15])  # at-least-once re-delivery: ignored
        msgs = consume(kafka_settings, out_topic, lambda m: len(m) >= 21, timeout_s=90, workers=(worker,))
        events = _events(msgs)
        assert [(e["rule"], e["class_name"], e["direction"]) for e in events] == [("mid", "person", "in")]
        assert _heartbeat_seqs(msgs)[:20] == list(range(20))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)

    # A new worker resumes the camera's state from the changelog: the same person walking
    # back is a new crossing of the same track ('out'), and replays of old frames stay ignored.
    # Every new frame is counted, in order: none is lost while the worker starts (faust used
    # to drop records it had buffered when it resumed after restoring the table).
    worker = start_worker(cfg, "counter", log=tmp_path / "counter-2.log")
    try:
        produce(kafka_settings, det_topic, walk_in[:10] + _walk("cam-a", range(20, 40), left_to_right=False))
        msgs = consume(kafka_settings, out_topic, lambda m: 39 in _heartbeat_seqs(m), timeout_s=90, workers=(worker,))
        events = _events(msgs)
        assert [(e["direction"], e["track_id"]) for e in events] == [("in", events[0]["track_id"]),
                                                                    ("out", events[0]["track_id"])]
        assert [seq for seq in _heartbeat_seqs(msgs) if seq >= 20] == list(range(20, 40))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
