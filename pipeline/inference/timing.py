"""In-memory per-stage latency statistics, keyed by model name, version and stage.

Enough for tests, benchmarks and a worker's periodic log line; telemetry can
satisfy ``LatencyRecorder`` with real histograms instead.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from pipeline.inference.base import LatencyRecorder


@dataclass
class StageStats:
    """Running totals of one (model, version, stage)."""

    calls: int = 0
    frames: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    last_s: float = 0.0

    @property
    def mean_ms_per_frame(self) -> float:
        return 1000.0 * self.total_s / self.frames if self.frames else 0.0


class StageTimings:
    """Thread-safe ``LatencyRecorder`` keeping ``StageStats`` per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str, str], StageStats] = {}

    def observe(
        self, model: str, version: str, stage: str, seconds: float, frames: int
    ) -> None:
        with self._lock:
            stats = self._stats.setdefault((model, version, stage), StageStats())
            stats.calls += 1
            stats.frames += frames
            stats.total_s += seconds
            stats.max_s = max(stats.max_s, seconds)
            stats.last_s = seconds

    def snapshot(self) -> dict[tuple[str, str, str], StageStats]:
        """A copy of the statistics, safe to read while workers keep recording."""
        with self._lock:
            return {key: StageStats(**vars(s)) for key, s in self._stats.items()}


@contextmanager
def timed(
    recorder: LatencyRecorder | None,
    model: str,
    version: str,
    stage: str,
    frames: int,
) -> Iterator[None]:
    """Time the body with ``perf_counter`` and report it if it succeeds.

    Failed stages are not recorded, so an error burst does not skew latency;
    errors are counted by the caller. A no-op without a recorder.
    """
    if recorder is None:
        yield
        return
    start = time.perf_counter()
    yield
    recorder.observe(model, version, stage, time.perf_counter() - start, frames)
