"""The inference worker under a slow model with a big backlog, and under kill -9.

Both run ``camcount infer`` as a subprocess, as an operator would, against the real broker
and model.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.kafka import topics
from tests.integration.test_inference_support import (
    group, produce_clip, read_detections, read_topic, rss_mb, start_worker_process,
    uncommitted, write_config,
)

pytestmark = pytest.mark.integration


def test_slow_model_with_a_backlog_pauses_resumes_and_stays_bounded(
        settings: Settings, pets09: Path, tmp_path: Path) -> None:
    limits = dict(max_batch=4, max_wait_ms=10, max_pending_frames=8, prepared_queue_batches=1,
                  output_queue_batches=1, model_runs=2, pause_after_ms=0, consumer_queue_kbytes=2048,
                  inject_delay_ms=60, stats_interval_ms=1000)
    keys = produce_clip(settings, pets09, count=160, cameras=4)  # the backlog: ~14 MB of JPEG
    config = write_config(tmp_path / "camcount.yaml", settings, **limits)
    log = tmp_path / "worker.log"
    group_id = group(settings, "infer-slow")
    proc = start_worker_process(config, log, "--group", group_id, "--idle-exit-s", "3")
    rss = []
    while proc.poll() is None:
        if (sample := rss_mb(proc.pid)) is not None:
            rss.append(sample)
        time.sleep(0.1)
    stdout = proc.stdout.read()
    assert proc.returncode == 0, log.read_text()[-3000:]
    totals = json.loads(stdout.strip().splitlines()[-1])
    text = log.read_text()

    assert totals["finished"] == 160
    assert totals["paused"] >= 2 and totals["resumed"] >= 2, totals
    assert "paused" in text and "resumed" in text
    # In flight at most, whatever the backlog: the batcher, one batch being prepared, the
    # prepared queue, the batches in the model, the output queue, one being emitted (acks).
    stages = limits["prepared_queue_batches"] + limits["model_runs"] + limits["output_queue_batches"] + 2
    bound = limits["max_pending_frames"] + stages * limits["max_batch"]
    assert totals["max_in_flight_frames"] <= bound, totals
    # Memory: once started (model loaded, the first batches run, in the first half of the
    # run) RSS stays flat while the backlog drains (Kafka holds it). Buffering it would show:
    # 160 decoded frames are 200 MB.
    first_half, second_half = rss[: len(rss) // 2], rss[len(rss) // 2 :]
    assert max(second_half) - max(first_half) < 40, f"RSS grew: {[round(r) for r in rss]} MB"
    assert set(read_detections(settings, keys)) == set(keys)
    assert uncommitted(settings, group_id) == {}


def test_kill_9_mid_stream_then_restart_loses_nothing(
        settings: Settings, pets09: Path, tmp_path: Path) -> None:
    # The killed member holds its partitions until its session times out (the broker's
    # minimum, 6 s, instead of the default 45 s).
    config = write_config(tmp_path / "camcount.yaml", settings, inject_delay_ms=30, max_batch=4,
                          stats_interval_ms=1000, consumer_overrides={"session.timeout.ms": 6000})
    keys = produce_clip(settings, pets09, count=120, cameras=3)
    group_id = group(settings, "infer-kill")
    first = start_worker_process(config, tmp_path / "first.log", "--group", group_id)
    try:
        seen = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= 30, timeout_s=60)
        assert len(seen) >= 30, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    partial = len(read_topic(settings, topics.DETECTIONS, timeout_s=5, idle_s=1))
    assert partial < len(keys), "the worker finished before it was killed: nothing was tested"

    second = start_worker_process(config, tmp_path / "second.log", "--group", group_id, "--idle-exit-s", "3")
    assert second.wait(120) == 0, (tmp_path / "second.log").read_text()[-3000:]
    got = read_detections(settings, keys)
    assert set(got) == set(keys), f"missing {sorted(set(keys) - set(got))}"
    duplicates = sum(len(v) - 1 for v in got.values())
    assert duplicates <= partial  # only frames the killed worker had produced are redone
    assert uncommitted(settings, group_id) == {}


def test_sigterm_finishes_in_flight_and_a_restart_redoes_nothing(
        settings: Settings, pets09: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "camcount.yaml", settings, inject_delay_ms=30, max_batch=4)
    keys = produce_clip(settings, pets09, count=90, cameras=3)
    group_id = group(settings, "infer-term")
    first = start_worker_process(config, tmp_path / "first.log", "--group", group_id)
    read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= 20, timeout_s=60)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0, (tmp_path / "first.log").read_text()[-3000:]
    done_first = json.loads(first.stdout.read().strip().splitlines()[-1])["finished"]
    assert done_first < len(keys), "the worker finished before SIGTERM: nothing was tested"

    second = start_worker_process(config, tmp_path / "second.log", "--group", group_id, "--idle-exit-s", "3")
    assert second.wait(120) == 0, (tmp_path / "second.log").read_text()[-3000:]
    done_second = json.loads(second.stdout.read().strip().splitlines()[-1])["finished"]
    got = read_detections(settings, keys)
    assert set(got) == set(keys)
    # Everything the first worker finished was committed at SIGTERM: nothing is done twice.
    assert done_first + done_second == len(keys)
    assert all(len(v) == 1 for v in got.values())
