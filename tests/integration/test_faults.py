"""Faults against the real services: the Kafka broker restarted mid-run, a worker stopped
while the broker is gone, and a flood of corrupt frames. (kill -9 of each worker: ``test_end_to_end.py``; ClickHouse down:
``test_sink_outage.py``.)

Each prints a ``FAULT ...`` line: frames lost, counts lost or doubled, recovery time.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.faust_app import STOP_TIMEOUT_S
from pipeline.kafka.headers import header
from pipeline.launcher import LocalPipeline
from tests.conftest import with_overrides
from tests.integration.fault_support import PrivateKafka, fault_cost, time_until_progress
from tests.integration.test_counter_app import CAMERAS, _walk
from tests.integration.test_end_to_end import START_MS, STREET, _offline_counts, _warehouse_counts
from tests.integration.test_inference_support import (
    clip_jpegs, detections_by_key, frame_value, group, produce, read_topic, start_worker_process, write_config,
)
from tests import kafka_helpers

pytestmark = pytest.mark.integration


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    broker = PrivateKafka(tmp_path / "kafka-state")
    try:
        broker.up()
        yield broker
    finally:
        broker.down()


def test_broker_restart_mid_run_keeps_counts_exact(ch_settings: Settings, private_kafka: PrivateKafka,
                                                    street_cars: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMCOUNT_KAFKA_BOOTSTRAP_SERVERS", raising=False)  # the workers use the private one
    run = with_overrides(ch_settings, kafka={"bootstrap_servers": private_kafka.bootstrap_servers},
                         topics={"prefix": "faults.", "partitions": 2},
                         ingest={"file_pacing": "realtime"},  # ingest itself lives through the outage
                         cameras=[STREET | {"source": str(street_cars)}])
    topics.create_topics(run)
    pipeline = LocalPipeline(run, tmp_path / "run")
    restarted: dict[str, float | None] = {}

    def fault() -> None:  # restart the broker once a third of the clip is in
        frames = pipeline.offsets("infer")
        if restarted or not frames or sum(high for _, high in frames.values()) < 150:
            return
        down_at = time.monotonic()
        private_kafka.down()
        private_kafka.up()
        up_at = time.monotonic()
        restarted["outage_s"] = up_at - down_at
        restarted["recovery_s"] = time_until_progress(pipeline, ["infer", "counter"], since=up_at)

    try:
        pipeline.start_workers()
        pipeline.ingest(START_MS, timeout_s=300, while_running=fault)
        pipeline.wait_drained(timeout_s=300)
        pipeline.wait_final(["street"], START_MS, timeout_s=120)
        warehouse = _warehouse_counts(run)
    finally:
        pipeline.stop()
    assert restarted, "the broker was never restarted"
    undisturbed = _offline_counts(pipeline.config_path, street_cars)
    assert undisturbed == {("approach", "car", "in"): 8}
    cost = fault_cost(run, warehouse, undisturbed)
    cost.report(f"broker restart (down {restarted['outage_s']:.1f}s)", restarted["recovery_s"])
    assert restarted["recovery_s"] is not None, "nothing was waiting when the broker came back"
    assert warehouse == undisturbed
    assert cost.frames_lost == 0


def test_stream_processor_stops_on_sigterm_without_the_broker(base_settings: Settings, private_kafka: PrivateKafka,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """faust waits for acknowledgements and aiokafka for its coordinator without end once the
    broker is gone: a supervisor's SIGTERM must still end the counter, within its bound."""
    monkeypatch.delenv("CAMCOUNT_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    run = with_overrides(base_settings, kafka={"bootstrap_servers": private_kafka.bootstrap_servers},
                         topics={"prefix": "stop.", "partitions": 2})
    topics.create_topics(run)
    config = kafka_helpers.write_config(run, tmp_path / "camcount.yaml", cameras=CAMERAS)
    log = tmp_path / "counter.log"
    worker = kafka_helpers.start_worker(config, "counter", log=log)
    try:
        kafka_helpers.produce(run, topics.name(run, topics.DETECTIONS), _walk("cam-a", range(20), True))
        kafka_helpers.consume(run, topics.name(run, topics.COUNT_EVENTS), lambda m: len(m) >= 20,
                              timeout_s=90, workers=(worker,))
        private_kafka.down()
        stopped_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(STOP_TIMEOUT_S + 15)
        took = time.monotonic() - stopped_at
    finally:
        if worker.poll() is None:
            worker.kill()
    print(f"FAULT broker gone, counter SIGTERM: stopped in {took:.1f}s (exit {worker.returncode})")
    assert worker.returncode == 0 or "exiting now" in log.read_text()


N_GOOD = 96
N_CORRUPT = 10_000


def _corrupt(i: int, jpeg: bytes) -> bytes:
    """Bad frames of several kinds, in turn: not Avro, cut short, a broken JPEG, a lying size."""
    good = frame_value("cam-0", 10_000 + i, jpeg, 768, 576)
    return [os.urandom(64), good[: len(good) // 3],
            frame_value("cam-0", 10_000 + i, b"\xff\xd8 not a jpeg", 768, 576),
            frame_value("cam-0", 10_000 + i, jpeg, 320, 240)][i % 4]


def _good_frames_per_s(settings: Settings, pets09: Path, tmp_path: Path, corrupt: int) -> tuple[float, dict, dict]:
    """Produce the clip's frames (``corrupt`` bad ones spread between them), run ``camcount
    infer`` over the backlog, and return good frames/s (first to last detection), the
    detections by key and the worker's totals."""
    jpegs = clip_jpegs(pets09, N_GOOD)
    per_gap = corrupt // N_GOOD
    messages = []
    for i, (jpeg, width, height) in enumerate(jpegs):
        camera = f"cam-{i % 2}"
        messages += [(camera, _corrupt(i * per_gap + j, jpegs[0][0])) for j in range(per_gap)]
        messages.append((camera, frame_value(camera, i // 2, jpeg, width, height)))
    messages += [("cam-0", _corrupt(k, jpegs[0][0])) for k in range(per_gap * N_GOOD, corrupt)]
    produce(settings, messages)

    config = write_config(tmp_path / f"infer-{corrupt}.yaml", settings)
    log = tmp_path / f"infer-{corrupt}.log"
    proc = start_worker_process(config, log, "--static", "--group", group(settings, f"flood-{corrupt}"),
                                "--idle-exit-s", "3")
    stdout, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log.read_text()[-3000:]
    totals = json.loads(stdout.strip().splitlines()[-1])
    msgs = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= N_GOOD, timeout_s=60)
    stamps = sorted(m.timestamp()[1] for m in msgs)
    return (N_GOOD - 1) / max((stamps[-1] - stamps[0]) / 1000, 1e-3), detections_by_key(msgs), totals


def test_corrupt_frame_flood_all_dead_lettered_good_frames_all_answered(
        kafka_settings: Settings, pets09: Path, tmp_path: Path) -> None:
    flooded = with_overrides(kafka_settings, topics={"prefix": f"{kafka_settings.topics.prefix}flood."})
    topics.create_topics(flooded)

    calm_fps, calm, _ = _good_frames_per_s(kafka_settings, pets09, tmp_path, corrupt=0)
    flood_fps, answered, totals = _good_frames_per_s(flooded, pets09, tmp_path, corrupt=N_CORRUPT)

    expected = {(f"cam-{i % 2}", i // 2) for i in range(N_GOOD)}
    assert set(calm) == expected
    assert set(answered) == expected  # every good frame's detections, none lost to the flood
    dead = read_topic(flooded, topics.dlq(topics.FRAMES), until=lambda m: len(m) >= N_CORRUPT, timeout_s=120)
    assert len(dead) == N_CORRUPT and totals["dlq"] == N_CORRUPT
    reasons: dict[str, int] = {}
    for msg in dead:
        reason = header(msg.headers(), "dlq.reason")
        assert reason and header(msg.headers(), "dlq.error"), msg.headers()
        reasons[reason] = reasons.get(reason, 0) + 1
    print(f"\nFAULT {N_CORRUPT} corrupt frames: frames lost=0, counts doubled=n/a, good frames/s "
          f"{flood_fps:.1f} with the flood vs {calm_fps:.1f} without ({flood_fps / calm_fps:.0%}); "
          f"dlq reasons {reasons}", flush=True)
