"""Helpers of the fault tests: a private Kafka broker to restart, and what a fault cost
(frames lost, detections replayed, counts lost or doubled, recovery time). No tests here."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.codec import DETECTIONS, FRAME, default_codec
from pipeline.config import REPO_ROOT, Settings
from pipeline.kafka import topics
from pipeline.launcher import LocalPipeline
from tests.integration.test_inference_support import read_topic


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateKafka:
    """A Kafka broker of one test's own (``infra/up.sh kafka`` on its own state folder and
    ports), which the test may stop and start; the shared broker is never touched."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.env = os.environ | {
            "CAMCOUNT_STATE_DIR": str(state_dir), "CAMCOUNT_KAFKA_PORT": str(self.port),
            "CAMCOUNT_KAFKA_CONTROLLER_PORT": str(free_port()), "CAMCOUNT_KAFKA_HEAP": "-Xmx384m",
        }
        shared_libs = Path(os.environ.get("CAMCOUNT_STATE_DIR", REPO_ROOT / ".camcount")) / "kafka" / "libs"
        if (shared_libs / ".stamp").exists():  # the broker jars already resolved: skip Maven
            (state_dir / "kafka").mkdir(parents=True, exist_ok=True)
            (state_dir / "kafka" / "libs").symlink_to(shared_libs)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, script: str) -> str:
        done = subprocess.run(["bash", str(REPO_ROOT / "infra" / script), "kafka"], env=self.env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stderr

    def up(self) -> None:
        self._run("up.sh")

    def down(self) -> None:
        self._run("down.sh")


def time_until_progress(pipeline: LocalPipeline, workers: list[str], since: float,
                        timeout_s: float = 90.0) -> float | None:
    """Seconds from ``since`` until each of ``workers`` commits past where it was at the first
    look (consuming again: its lag goes down). A worker with nothing waiting then must get new
    input first; None if one never did within the timeout (nothing to measure)."""
    baseline = None
    deadline = time.monotonic() + timeout_s
    while baseline is None and time.monotonic() < deadline:
        baseline = {w: pipeline.offsets(w) for w in workers}
        baseline = None if any(v is None for v in baseline.values()) else baseline
    assert baseline is not None, f"offsets of {workers} unknown {timeout_s:.0f}s after the fault"
    waiting = set(workers)
    while waiting and time.monotonic() < deadline:
        for worker in list(waiting):
            now = pipeline.offsets(worker)
            if now and any(now[k][0] > done for k, (done, _) in baseline[worker].items()):
                waiting.discard(worker)
        if not waiting:
            return time.monotonic() - since
        time.sleep(0.2)
    stuck = [w for w in waiting if any(high > done for done, high in baseline[w].values())]
    assert not stuck, f"{stuck} made no progress {timeout_s:.0f}s after the fault"
    return None


@dataclass
class FaultCost:
    """What a fault cost, against an undisturbed run of the same clip."""

    frames_lost: int  # frames ingest skipped (seq gaps) or inference never answered
    detections_replayed: int  # detections produced twice (at-least-once redelivery, harmless)
    counts_lost: int  # per-minute counts below the undisturbed run's, summed
    counts_doubled: int  # per-minute counts above it, summed

    def report(self, fault: str, recovery_s: float | None) -> str:
        recovery = "n/a" if recovery_s is None else f"{recovery_s:.1f}s"
        line = (f"FAULT {fault}: frames lost={self.frames_lost}, counts lost={self.counts_lost}, "
                f"counts doubled={self.counts_doubled}, recovery={recovery} "
                f"(detections replayed={self.detections_replayed})")
        print(f"\n{line}", flush=True)
        return line


def fault_cost(settings: Settings, warehouse: dict[tuple, int], undisturbed: dict[tuple, int]) -> FaultCost:
    codec = default_codec()
    frames = read_topic(settings, topics.FRAMES, idle_s=3, timeout_s=60)
    detections = read_topic(settings, topics.DETECTIONS, idle_s=3, timeout_s=60)
    seqs: dict[str, set[int]] = {}
    for msg in frames:
        record = codec.decode_as(msg.value(), FRAME)
        seqs.setdefault(record["camera_id"], set()).add(record["seq"])
    answered = {(r["camera_id"], r["seq"]) for r in (codec.decode_as(m.value(), DETECTIONS) for m in detections)}
    gaps = sum(max(s) - min(s) + 1 - len(s) for s in seqs.values())
    unanswered = sum(1 for cam, s in seqs.items() for seq in s if (cam, seq) not in answered)
    keys = set(warehouse) | set(undisturbed)
    return FaultCost(
        frames_lost=gaps + unanswered,
        detections_replayed=len(detections) - len(answered),
        counts_lost=sum(max(0, undisturbed.get(k, 0) - warehouse.get(k, 0)) for k in keys),
        counts_doubled=sum(max(0, warehouse.get(k, 0) - undisturbed.get(k, 0)) for k in keys))
