"""The whole pipeline through the real broker and ClickHouse equals ``camcount count`` on the same clip."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.launcher import LocalPipeline, per_minute_counts
from tests.conftest import with_overrides
from tests.integration.fault_support import fault_cost, time_until_progress

START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: a minute boundary
STREET = {"id": "street", "fps": 12, "resolution": [640, 352],
          "rules": [{"type": "line", "name": "approach", "points": [[180, 200], [560, 200]],
                     "classes": ["car", "truck", "bus", "motorcycle"]}]}


def _offline_counts(config: Path, video: Path) -> dict[tuple, int]:
    run = subprocess.run([sys.executable, "-m", "pipeline.cli", "-c", str(config), "count", str(video),
                          "--camera", "street", "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return {(r["rule"], r["class"], r["direction"]): r["count"] for r in json.loads(run.stdout)["counts"]}


def _warehouse_counts(settings: Settings) -> dict[tuple, int]:
    totals: dict[tuple, int] = {}
    for _, _, rule, cls, direction, count in per_minute_counts(settings, ["street"], START_MS):
        totals[(rule, cls, direction)] = totals.get((rule, cls, direction), 0) + count
    return totals


_OFFLINE: dict[Path, dict[tuple, int]] = {}


def _offline_once(config: Path, video: Path) -> dict[tuple, int]:
    """``camcount count`` of the clip (the same for every run: computed once per session)."""
    if video not in _OFFLINE:
        _OFFLINE[video] = _offline_counts(config, video)
    return _OFFLINE[video]


def _due(pipeline: LocalPipeline, crash: str) -> bool:
    """Whether the run is far enough along to crash ``crash`` with work of its own in flight."""
    if crash in ("infer", "counter"):  # a backlog of frames / detections
        return (pipeline.consumer_lag() or 0) > 100
    events = pipeline.offsets("aggregate")  # aggregate and sink: some crossings counted already
    return events is not None and sum(high for _, high in events.values()) >= 3


@pytest.mark.parametrize("crash", [
    None,         # undisturbed
    "counter",    # with a backlog of detections: its tracks restored, detections re-read
    "infer",      # with a backlog of frames: re-read from the last commit, model loaded again
    "aggregate",  # with windows open: restored, count events re-read
    "sink",       # with rows not yet flushed: re-read and written again
])
def test_warehouse_counts_equal_offline_counts(settings: Settings, street_cars: Path, tmp_path: Path,
                                               crash: str | None) -> None:
    run = with_overrides(settings, cameras=[STREET | {"source": str(street_cars)}])
    pipeline = LocalPipeline(run, tmp_path)
    crashed, recovery_s = [], []

    def fault() -> None:  # crash a worker once it is well into the clip
        if crash and not crashed and (tmp_path / "ingest.log").exists() and _due(pipeline, crash):
            killed_at = time.monotonic()
            pipeline.restart(crash)
            crashed.append(crash)
            recovery_s.append(time_until_progress(pipeline, [crash], since=killed_at))

    try:
        pipeline.start_workers()
        pipeline.ingest(START_MS, timeout_s=300, while_running=fault)
        deadline = time.monotonic() + 300
        while crash and not crashed and time.monotonic() < deadline and pipeline.consumer_lag() != 0:
            pipeline.check_alive()  # ingest ran ahead: the later stages may still be mid-run
            fault()
            time.sleep(0.5)
        pipeline.wait_drained(timeout_s=400)
        pipeline.wait_final(["street"], START_MS, timeout_s=120)
        warehouse = _warehouse_counts(run)
    finally:
        pipeline.stop()
    assert not crash or crashed, "the fault was never injected"
    offline = _offline_once(pipeline.config_path, street_cars)
    assert offline == {("approach", "car", "in"): 8}  # the clip's ground truth
    if crash:
        fault_cost(run, warehouse, offline).report(f"kill -9 {crash}", recovery_s[0])
    assert warehouse == offline
