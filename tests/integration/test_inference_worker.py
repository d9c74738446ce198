"""The inference worker against the real broker, the real model and real ClickHouse.

Frames are pets09 clip frames (people walking in every frame), JPEG-encoded and produced
as ``Frame`` records by the test itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import with_overrides
from pipeline.codec import default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.headers import header
from pipeline.sinks.clickhouse import make_client
from tests.integration.test_inference_support import (
    group, WorkerThread, clip_jpegs, frame_value, produce, produce_clip,
    read_detections, read_topic, uncommitted,
)

pytestmark = pytest.mark.integration
PERSON = 0


def test_every_frame_gets_detections_and_stats_reach_clickhouse(settings: Settings, pets09: Path) -> None:
    settings = with_overrides(settings, inference={"stats_interval_ms": 500, "max_batch": 8})
    keys = produce_clip(settings, pets09, count=90, cameras=3)
    worker = WorkerThread(settings, group_id=group(settings, "infer-e2e"), idle_exit_s=3).start()
    got = read_detections(settings, keys)
    totals = worker.join()

    assert set(got) == set(keys), f"missing {sorted(set(keys) - set(got))}"
    assert totals["finished"] == 90 and totals.get("dlq", 0) == 0
    with_people = 0
    for (camera, seq), records in got.items():
        record = records[0]
        assert (record["width"], record["height"]) == (768, 576)
        assert (record["model_name"], record["model_version"]) == ("yolox-nano", "1")
        assert 1 <= record["batch_size"] <= 8 and record["inference_ms"] > 0
        for box in record["boxes"]:
            assert 0.0 <= box["x1"] < box["x2"] <= 1.0 and 0.0 <= box["y1"] < box["y2"] <= 1.0
            assert 0.0 < box["score"] <= 1.0 and 0 <= box["class_id"] < 80
        people = [b for b in record["boxes"] if b["class_id"] == PERSON and b["score"] >= 0.5]
        with_people += len(people) >= 2  # several pedestrians are in view in every clip frame
    assert with_people >= 0.9 * len(keys), f"people found in only {with_people}/{len(keys)} frames"
    # Every input offset was stored after its detections were acked, and committed at exit.
    assert uncommitted(settings, group(settings, "infer-e2e")) == {}

    rows = make_client(settings.clickhouse).execute(
        "SELECT sum(frames), sum(batches), max(batch_size_max), max(inference_ms_p95), "
        "uniqExact(worker_id) FROM inference_stats WHERE model_name = 'yolox-nano'")
    frames, batches, batch_max, inference_p95, workers = rows[0]
    assert frames == 90 and 90 / 8 <= batches <= 90 and batch_max <= 8
    assert inference_p95 > 0 and workers == 1


def test_detections_keep_each_cameras_order(kafka_settings: Settings, pets09: Path) -> None:
    settings = with_overrides(kafka_settings, clickhouse={"port": 1})  # no ClickHouse: must not matter
    keys = produce_clip(settings, pets09, count=60, cameras=2)
    worker = WorkerThread(settings, group_id=group(settings, "infer-order"), idle_exit_s=3).start()
    msgs = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= len(keys))
    worker.join()
    codec = default_codec()
    seqs: dict[str, list[int]] = {}
    for msg in msgs:
        record = codec.decode_as(msg.value(), "camcount.Detections")
        seqs.setdefault(record["camera_id"], []).append(record["seq"])
    assert seqs == {"cam-0": list(range(30)), "cam-1": list(range(30))}


def bad_frames(good: tuple[bytes, int, int]) -> list[tuple[str, bytes]]:
    """One frame per rejection reason, each from camera ``bad``."""
    jpeg, width, height = good
    unknown = b"\xc3\x01" + bytes(8) + b"\x00" * 20
    return [
        ("corrupt", b"not avro at all"),
        ("unknown_schema", unknown),
        ("bad_image", frame_value("bad", 0, b"\xff\xd8 this is no jpeg", width, height)),
        ("size_mismatch", frame_value("bad", 1, jpeg, width + 16, height)),
        ("input_limit", frame_value("bad", 2, jpeg, 5000, 5000)),
        ("input_limit", frame_value("bad", 3, jpeg + bytes(300_000), width, height)),
    ]


def test_bad_frames_go_to_the_dlq_with_their_reason_and_the_next_frames_pass(
        kafka_settings: Settings, pets09: Path) -> None:
    settings = with_overrides(kafka_settings, clickhouse={"port": 1},
                              inference={"max_frame_bytes": 256 * 1024})
    frames = clip_jpegs(pets09, 12)
    bad = bad_frames(frames[0])
    # Bad frames interleaved with good ones on one camera (one partition).
    messages, good_keys = [], []
    for seq, frame in enumerate(frames):
        messages.append(("cam-x", frame_value("cam-x", seq, *frame)))
        good_keys.append(("cam-x", seq))
        if seq < len(bad):
            messages.append(("cam-x", bad[seq][1]))
    produce(settings, messages)

    worker = WorkerThread(settings, group_id=group(settings, "infer-dlq"), idle_exit_s=3).start()
    got = read_detections(settings, good_keys)
    dead = read_topic(settings, topics.dlq(topics.FRAMES), until=lambda m: len(m) >= len(bad))
    totals = worker.join()

    assert set(got) == set(good_keys)
    # Parse failures are dead-lettered by the poll loop, image failures by the decode stage:
    # the DLQ's order may differ from the input's, dlq.offset gives the input order back.
    dead.sort(key=lambda m: int(header(m.headers(), "dlq.offset")))
    assert [header(m.headers(), "dlq.reason") for m in dead] == [reason for reason, _ in bad]
    assert [m.value() for m in dead] == [value for _, value in bad]
    assert all(header(m.headers(), "dlq.topic") == topics.name(settings, topics.FRAMES) for m in dead)
    assert all(header(m.headers(), "dlq.error") for m in dead)
    assert totals["dlq"] == len(bad) and totals["finished"] == len(messages)
    # DLQ'd frames are finished too: the group committed up to the end.
    assert uncommitted(settings, group(settings, "infer-dlq")) == {}


def test_rebalance_mid_stream_loses_and_duplicates_nothing(kafka_settings: Settings, pets09: Path) -> None:
    settings = with_overrides(kafka_settings, clickhouse={"port": 1},
                              topics={"partitions": 2}, inference={"inject_delay_ms": 50, "max_batch": 4})
    keys = produce_clip(settings, pets09, count=96, cameras=8)  # cam-0..3 on p0, cam-4..7 on p1
    group_id = group(settings, "infer-rebalance")
    first = WorkerThread(settings, group_id=group_id, worker_id="first").start()
    read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= 8)
    # A second member joins while the first is mid-backlog: one partition is revoked from
    # the first, with frames in flight, and assigned to the second.
    second = WorkerThread(settings, group_id=group_id, worker_id="second").start()
    deadline = time.monotonic() + 30
    while not second.worker.assignment and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.worker.assignment and first.worker.assignment
    keys += produce_clip(settings, pets09, count=48, cameras=8, start=96)
    got = read_detections(settings, keys)
    first.worker.stop()  # SIGTERM's path: finish, flush, commit
    second.worker.stop()
    totals = [first.join(), second.join()]

    assert set(got) == set(keys)
    assert all(t.get("finished", 0) > 0 for t in totals), totals
    duplicates = {k: len(v) for k, v in got.items() if len(v) > 1}
    assert not duplicates, f"a graceful rebalance re-did frames {duplicates}"
    assert uncommitted(settings, group_id) == {}


def test_end_of_stream_passes_through_in_order_without_boxes(kafka_settings: Settings, pets09: Path) -> None:
    settings = with_overrides(kafka_settings, clickhouse={"port": 1}, inference={"max_batch": 4})
    frames = clip_jpegs(pets09, 6)
    messages = [("cam-0", frame_value("cam-0", seq, *frame)) for seq, frame in enumerate(frames)]
    messages.append(("cam-0", frame_value("cam-0", 6, b"", 0, 0, end_of_stream=True)))
    produce(settings, messages)
    worker = WorkerThread(settings, group_id=group(settings, "infer-eos"), idle_exit_s=2).start()
    msgs = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= 7)
    worker.join()
    records = [default_codec().decode_as(m.value(), "camcount.Detections") for m in msgs]
    assert [r["seq"] for r in records] == list(range(7))
    assert [r["end_of_stream"] for r in records] == [False] * 6 + [True]
    assert records[-1]["boxes"] == [] and all(r["boxes"] for r in records[:-1])


def test_frames_older_than_max_lag_are_skipped_and_counted(settings: Settings, pets09: Path) -> None:
    settings = with_overrides(settings, inference={"max_lag_ms": 60_000})
    jpeg, width, height = clip_jpegs(pets09, 1)[0]
    hour_ago_ms = int(time.time() * 1000) - 3_600_000
    old = [("cam-0", frame_value("cam-0", seq, jpeg, width, height, capture_ts_ms=hour_ago_ms))
           for seq in range(5)]
    fresh = [("cam-0", frame_value("cam-0", seq, jpeg, width, height)) for seq in range(5, 8)]
    produce(settings, old + fresh)
    worker = WorkerThread(settings, group_id=group(settings, "infer-lag"), idle_exit_s=2).start()
    got = read_detections(settings, [("cam-0", seq) for seq in range(5, 8)])
    totals = worker.join()
    assert set(got) == {("cam-0", seq) for seq in range(5, 8)}
    assert totals["skipped"] == 5 and totals["frames"] == 3 and totals["finished"] == 8
    assert uncommitted(settings, group(settings, "infer-lag")) == {}
    client = make_client(settings.clickhouse)  # the worker's last stats report, at its stop
    assert client.execute("SELECT sum(frames), sum(skipped) FROM inference_stats") == [(3, 5)]


def test_people_boxes_match_the_bare_detector(kafka_settings: Settings, pets09: Path) -> None:
    """The worker's boxes equal ``detect_batch`` on the same JPEGs (no mixing of rows)."""
    from pipeline.inference.preprocess import decode_image
    from pipeline.inference.build import load_worker_detector

    settings = with_overrides(kafka_settings, clickhouse={"port": 1}, inference={"max_batch": 4})
    keys = produce_clip(settings, pets09, count=12, cameras=3)
    worker = WorkerThread(settings, group_id=group(settings, "infer-equal"), idle_exit_s=2).start()
    got = read_detections(settings, keys)
    worker.join()
    detector = load_worker_detector(settings)
    frames = clip_jpegs(pets09, 12)
    for i, (jpeg, _, _) in enumerate(frames):
        (expected,) = detector.detect_batch([decode_image(jpeg)])
        record = got[keys[i]][0]
        boxes = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in record["boxes"]]).reshape(-1, 4)
        assert len(boxes) == len(expected)
        np.testing.assert_allclose(boxes, expected.xyxy, atol=1e-3)
