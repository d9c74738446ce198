"""A primary per camera group through the real broker, the real model and real ClickHouse: a
primary worker following model-control serves the cameras matching a group's glob with the
group's primary and the others with the global primary; rolling the group back puts its
cameras back on the global primary; a group primary that cannot load is rolled back within
its group by the worker, while every frame keeps its detections."""

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
    B1, BAD, change_and_undo, change_while_feeding, versions, wait_for, with_broken_version,
)
from tests.integration.test_inference_support import WorkerThread, group, read_topic
from tests.kafka_helpers import write_config

pytestmark = pytest.mark.integration
PRIMARY = "yolox-nano:1"
#: cam-1's group (cam-0 matches no group).
CAM1 = "cam-1*"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return with_overrides(settings, inference={"max_batch": 4, "max_pending_frames": 8})


def test_a_camera_group_is_served_by_its_primary_until_rolled_back(fast: Settings, pets09: Path, tmp_path: Path,
                                                                  capsys) -> None:
    cfg = str(write_config(fast, tmp_path / "camcount.yaml"))
    listing = []

    def list_and_roll_back() -> None:
        capsys.readouterr()
        assert cli(["-c", cfg, "models", "list"]) == 0
        listing.append(capsys.readouterr().out)
        assert cli(["-c", cfg, "models", "rollback", "--cameras", CAM1, "--by", "ops"]) == 0

    first, second, third, got = change_and_undo(
        fast, pets09, group(fast, "groups"),
        lambda: cli(["-c", cfg, "models", "promote", B1, "--cameras", CAM1, "--by", "ops", "--reason", "night"]),
        lambda live: live.detector_for("cam-1") is not None,
        list_and_roll_back,
        lambda live: live.detector_for("cam-1") is None)
    keys = first + second + third
    assert all(got[key][0]["boxes"] for key in keys)  # pedestrians in every frame
    grouped = [key for key in second if key[0] == "cam-1"]
    assert versions(got, grouped) == {"1-b1"}
    assert versions(got, [key for key in keys if key not in grouped]) == {"1"}
    assert f"{B1:<24} cameras {CAM1}" in listing[0] and f"{PRIMARY:<24} primary" in listing[0]
    assert f"  {CAM1:<22} {B1}" in listing[0]
    a = control.read_assignment(fast)
    assert (a.groups, a.primary, a.action, a.subject) == ((), PRIMARY, "rollback", PRIMARY)
    audit = make_client(fast.clickhouse).execute(
        "SELECT action, changed_by, model, primary_model, reason FROM model_audit ORDER BY revision")
    assert audit == [
        ("promote", "ops", B1, PRIMARY, f"cameras {CAM1}: global -> {B1}; night"),
        ("rollback", "ops", PRIMARY, PRIMARY, f"cameras {CAM1}: {B1} -> global"),
    ]


def test_a_group_primary_that_fails_its_checksum_is_rolled_back_within_its_group(
        fast: Settings, pets09: Path, tmp_path: Path) -> None:
    settings = with_broken_version(fast, tmp_path)
    control.change(settings, lambda a: am.promote(a, B1, "ops", control.now_ms(), cameras="cam-0"))
    worker = WorkerThread(settings, follow=True, group_id=group(settings, "broken-group"), idle_exit_s=20).start()
    live = worker.worker._live
    wait_for(lambda: live.detector_for("cam-0") is not None, what="cam-0's group primary to load")
    got, keys = change_while_feeding(  # frames keep coming while the group primary is set and rolled back
        settings, pets09, worker, lambda a: am.promote(a, BAD, "mallory", control.now_ms(), cameras=CAM1),
        lambda: control.read_assignment(settings).group(CAM1) is None, "the automatic group rollback", seqs=30)
    a = control.read_assignment(settings)
    assert (a.action, a.primary, a.groups) == ("rollback", PRIMARY, (am.GroupPrimary("cam-0", B1),))
    assert a.changed_by == f"auto:{worker.worker.worker_id}" and live.counts["group_rollbacks"] == 1
    assert set(got) == set(keys)  # detections never stopped
    assert versions(got, [k for k in keys if k[0] == "cam-1"]) == {"1"}  # the global primary covered cam-1
    assert versions(got, [k for k in keys if k[0] == "cam-0"]) == {"1-b1"}  # the other group stayed
    audit = make_client(settings.clickhouse).execute(
        "SELECT action, changed_by, model, reason FROM model_audit ORDER BY revision")
    assert [(x, y.split(":")[0], z) for x, y, z, _ in audit] == [
        ("promote", "ops", B1), ("promote", "mallory", BAD), ("rollback", "auto", PRIMARY)]
    assert audit[2][3].startswith(f"cameras {CAM1}: {BAD} -> global; load failed") and "sha256 mismatch" in audit[2][3]
    alerts = read_topic(settings, topics.ALERTS, until=lambda m: len(m) >= 1, timeout_s=10)
    alert = default_codec().decode_as(alerts[0].value(), ALERT)
    assert alert["alert_id"] == f"group_failover:{CAM1}:{BAD}" and alert["state"] == "firing"
