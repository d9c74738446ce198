"""The canary through the real broker, the real model and real ClickHouse: a primary worker
following model-control serves the cameras in the canary share with the canary version and
the others with the primary; a canary that cannot load, or whose runs fail, ends by itself
while every frame keeps its detections."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main as cli
from pipeline.codec import ALERT, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.shadow import assignment as am
from pipeline.shadow import control
from pipeline.sinks.clickhouse import make_client
from tests.conftest import with_overrides
from tests.integration.shadow_support import (
    B1, BAD, change_and_undo, change_while_feeding, produce_frames, versions, wait_for, with_broken_version, worker_failing_on,
)
from tests.integration.test_inference_support import WorkerThread, group, read_detections, read_topic
from tests.kafka_helpers import write_config

pytestmark = pytest.mark.integration
#: cam-0 is in this share of cameras, cam-1 is not (the test checks it).
SHARE = 0.9


@pytest.fixture
def fast(settings: Settings) -> Settings:
    settings = with_overrides(settings, inference={"max_batch": 4, "max_pending_frames": 8})
    assert am.in_share("cam-0", SHARE) and not am.in_share("cam-1", SHARE)
    return settings


def test_canary_cameras_are_served_by_the_canary_until_it_ends(fast: Settings, pets09: Path,
                                                               tmp_path: Path) -> None:
    cfg = str(write_config(fast, tmp_path / "camcount.yaml"))
    first, second, third, got = change_and_undo(
        fast, pets09, group(fast, "canary"),
        lambda: cli(["-c", cfg, "models", "canary", B1, "--share", str(SHARE), "--by", "ops"]),
        lambda live: live.counts["routes"] == 1,
        lambda: cli(["-c", cfg, "models", "canary", B1, "--share", "0", "--by", "ops", "--reason", "done"]),
        lambda live: live.detector_for("cam-0") is None)
    assert all(got[key][0]["boxes"] for key in first + second + third)  # pedestrians in every frame
    canary = [key for key in second if key[0] == "cam-0"]
    assert versions(got, canary) == {"1-b1"}
    assert versions(got, [key for key in first + second + third if key not in canary]) == {"1"}
    # Sub-batches are batches of their own: the statistics count each version's frames.
    stats = make_client(fast.clickhouse).execute(
        "SELECT model_version, sum(frames) FROM inference_stats GROUP BY model_version ORDER BY model_version")
    assert stats == [("1", 34), ("1-b1", 10)]
    assert control.read_assignment(fast).reason == "share 0; done"


def test_a_canary_that_fails_its_checksum_ends_by_itself(fast: Settings, pets09: Path, tmp_path: Path) -> None:
    settings = with_broken_version(fast, tmp_path)
    worker = WorkerThread(settings, follow=True, group_id=group(settings, "broken-canary"), idle_exit_s=20).start()
    got, keys = change_while_feeding(  # frames keep coming while the canary is set and ends
        settings, pets09, worker, lambda a: am.set_canary(a, BAD, SHARE, "mallory", control.now_ms()),
        lambda: control.read_assignment(settings).canary is None, "the canary to end", seqs=30)
    a = control.read_assignment(settings)
    assert (a.action, a.subject, a.primary) == ("canary", BAD, "yolox-nano:1") and a.changed_by.startswith("auto:")
    assert set(got) == set(keys)  # detections never stopped, all by the primary
    assert versions(got, keys) == {"1"}
    audit = make_client(settings.clickhouse).execute(
        "SELECT action, changed_by, model, reason FROM model_audit ORDER BY revision")
    assert [(x, y.split(":")[0], z) for x, y, z, _ in audit] == [("canary", "mallory", BAD), ("canary", "auto", BAD)]
    assert audit[1][3].startswith("share 0; load failed") and "sha256 mismatch" in audit[1][3]
    alerts = read_topic(settings, topics.ALERTS, until=lambda m: len(m) >= 1, timeout_s=10)
    alert = default_codec().decode_as(alerts[0].value(), ALERT)
    assert alert["alert_id"] == f"canary_failover:{BAD}" and alert["state"] == "firing"


def test_a_canary_whose_runs_fail_is_covered_by_the_primary_then_ended(fast: Settings, pets09: Path) -> None:
    worker = worker_failing_on(fast, B1, "canary-runs").start()
    live = worker.worker._live
    try:
        control.change(fast, lambda a: am.set_canary(a, B1, SHARE, "ops", control.now_ms()))
        wait_for(lambda: live.counts["routes"] == 1, what="the canary to load")
        # cam-0's 20 frames make at least 5 canary batches: the default limits judge after 5.
        keys = produce_frames(fast, pets09, range(0, 20))
        wait_for(lambda: control.read_assignment(fast).canary is None, 30, "the canary to end")
        keys += produce_frames(fast, pets09, range(20, 24))
        got = read_detections(fast, keys)
    finally:
        worker.worker.stop()
        worker.join()
    a = control.read_assignment(fast)
    assert a.changed_by == "auto:w-canary-runs" and a.reason.startswith("share 0; error rate 1.00")
    assert set(got) == set(keys)  # the failing runs never left a frame out
    # 1-b1 produced nothing: its failed batches were re-run on the primary and carry its version.
    assert versions(got, keys) == {"1"} and live.counts["canaries_ended"] == 1
