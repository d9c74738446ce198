"""``camcount demo``: the whole pipeline on the sample clips, counts printed from ClickHouse.

Starts the local Kafka and ClickHouse (unless already running), declares topics for this
run (its own prefix), migrates, runs ingest → inference → counter → aggregator → sink as
separate processes, waits until every window is final, prints the per-minute counts read
back from ClickHouse, then stops what it started and deletes the run's topics.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import REPO_ROOT, Settings
from pipeline.exceptions import CamcountError, ModelIntegrityError
from pipeline.kafka.topics import create_topics, delete_topics
from pipeline.launcher import LocalPipeline, per_minute_counts
from pipeline.samples import sample_clip
from pipeline.sinks.clickhouse import make_client, wait_until_up
from pipeline.sinks.migrations import migrate


def progress(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def _ensure_model(settings: Settings) -> None:
    """Without the shared folder, fetch the primary model from its public release (sha256-pinned)."""
    from pipeline.inference.fetch import fetch_model
    from pipeline.inference.registry import registry_from_settings

    registry = registry_from_settings(settings)
    spec = registry.get(*settings.models.primary.split(":", 1))
    try:
        registry.resolve_file(spec)
    except ModelIntegrityError:
        progress(f"model {spec.key} not found locally; fetching it into {registry.cache_dir}")
        fetch_model(spec, registry.cache_dir)


def demo_settings(settings: Settings, run_id: str) -> tuple[Settings, list[str]]:
    """The config's cameras that have a readable file (the pets09 clip always), with a run prefix."""
    raw = settings.model_dump(mode="python")
    cameras = []
    for cam in raw["cameras"]:
        source = Path(cam["source"])
        if cam["id"] == "pets09":
            cam["source"] = str(sample_clip())
        elif not (source if source.is_absolute() else REPO_ROOT / source).is_file():
            progress(f"camera {cam['id']}: {source} not found, left out")
            continue
        cameras.append(cam)
    if not cameras:
        raise CamcountError("the config has no camera whose source file exists")
    raw["cameras"] = cameras
    raw["topics"]["prefix"] = f"demo-{run_id}."
    raw["kafka"]["sasl_password"] = settings.kafka.sasl_password
    raw["clickhouse"]["password"] = settings.clickhouse.password
    return Settings.model_validate(raw), [c["id"] for c in cameras]


def _print_counts(rows: list[tuple]) -> None:
    print(f"{'window_start (UTC)':<20} {'camera':<8} {'rule':<10} {'class':<8} {'dir':<4} {'count':>5}")
    for start, camera, rule, cls, direction, count in rows:
        print(f"{start:%Y-%m-%d %H:%M}     {camera:<8} {rule:<10} {cls:<8} {direction:<4} {count:>5}")
    totals: dict[tuple, int] = {}
    for _, camera, rule, cls, direction, count in rows:
        totals[(camera, rule, cls, direction)] = totals.get((camera, rule, cls, direction), 0) + count
    print("\ntotals: " + ", ".join(f"{c}/{r}/{k} {d}={n}" for (c, r, k, d), n in sorted(totals.items())))


def run_demo(settings: Settings, keep_running: bool = False) -> int:
    already_up = _reachable(settings.kafka.bootstrap_servers) and _reachable(
        f"{settings.clickhouse.host}:{settings.clickhouse.port}")
    if not already_up:
        progress("starting Kafka and ClickHouse (infra/up.sh)")
        if subprocess.call(["bash", str(REPO_ROOT / "infra" / "up.sh")]) != 0:
            raise CamcountError("infra/up.sh failed")
    run_id = time.strftime("%Y%m%d%H%M%S")
    run, cameras = demo_settings(settings, run_id)
    workdir = Path(tempfile.mkdtemp(prefix=f"camcount-demo-{run_id}-"))
    pipeline = LocalPipeline(run, workdir, progress)
    try:
        _ensure_model(run)
        progress(f"creating topics (prefix {run.topics.prefix}) and migrating ClickHouse")
        create_topics(run)
        migrate(make_client(run.clickhouse, database="default"), run.clickhouse.database,
                wait_until_up(run.clickhouse))
        pipeline.start_workers()
        start_ms = int(time.time() // 60 * 60_000)
        progress(f"ingesting {', '.join(cameras)} (capture times from {time.strftime('%H:%M', time.gmtime(start_ms / 1000))} UTC)")
        pipeline.ingest(start_ms, timeout_s=900)
        progress("ingest done; waiting for the workers to drain their topics")
        pipeline.wait_drained(timeout_s=900)
        progress("waiting until every window is final in ClickHouse")
        pipeline.wait_final(cameras, start_ms, timeout_s=300)
        _print_counts(per_minute_counts(run, cameras, start_ms))
        return 0
    finally:
        pipeline.stop()
        delete_topics(run)  # the admin client is gone before Kafka stops: no disconnection lines
        if not already_up and not keep_running:
            progress("stopping Kafka and ClickHouse (infra/down.sh)")
            subprocess.call(["bash", str(REPO_ROOT / "infra" / "down.sh")])
