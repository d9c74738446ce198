"""Per-batch statistics of an inference worker: kept in memory, logged and written to
ClickHouse ``inference_stats`` at an interval.

``StatsWindow`` is pure (batches in, rows out). ``StatsReporter`` runs it on its own thread,
so a slow or absent ClickHouse never slows inference: a failed insert is logged, its rows
kept (up to a bound) and retried at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
from opentelemetry import metrics

from pipeline.config import ClickHouseConfig
from pipeline.sinks.clickhouse import make_client

log = logging.getLogger(__name__)
_meter = metrics.get_meter("camcount.inference")
_BATCH_SIZE = _meter.create_histogram("camcount.inference.batch_size", unit="{frame}",
                                      description="Frames per model run")
_INFERENCE_MS = _meter.create_histogram("camcount.inference.latency", unit="ms",
                                        description="Model run time per batch")
_QUEUE_WAIT_MS = _meter.create_histogram("camcount.inference.queue_wait", unit="ms",
                                         description="Poll to model run, oldest frame of a batch")
_LAG_MS = _meter.create_histogram("camcount.inference.capture_lag", unit="ms",
                                  description="Capture to produce (wall clock), oldest frame of a batch")

Model = tuple[str, str]
Row = dict[str, Any]
#: Worker counters that also go to the interval's row, and their column.
_WINDOW_COUNTS = {"dlq": "errors", "skipped": "skipped"}
COLUMNS = (
    "ts_ms", "ts", "worker_id", "model_name", "model_version", "batches", "frames", "errors",
    "skipped", "batch_size_mean", "batch_size_max", "queue_wait_ms_p50", "queue_wait_ms_p95",
    "inference_ms_p50", "inference_ms_p95", "frames_per_s", "lag_ms_max",
)


@dataclass(frozen=True)
class BatchStat:
    """One model run: ``queue_wait_ms`` of its oldest frame (poll to run start),
    ``lag_ms`` of its oldest frame (capture to produce, wall clock)."""

    model: Model
    frames: int
    queue_wait_ms: float
    inference_ms: float
    lag_ms: float


@dataclass
class _ModelWindow:
    sizes: list[int] = field(default_factory=list)
    queue_wait_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    lag_ms_max: float = 0.0
    errors: int = 0  # frames dead-lettered
    skipped: int = 0  # frames older than max_lag_ms, not served


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


class StatsWindow:
    """Batches of one reporting interval, by model; ``rows`` empties it."""

    def __init__(self) -> None:
        self._models: dict[Model, _ModelWindow] = {}

    def add(self, stat: BatchStat) -> None:
        w = self._models.setdefault(stat.model, _ModelWindow())
        w.sizes.append(stat.frames)
        w.queue_wait_ms.append(stat.queue_wait_ms)
        w.inference_ms.append(stat.inference_ms)
        w.lag_ms_max = max(w.lag_ms_max, stat.lag_ms)

    def add_count(self, model: Model, kind: str, count: int = 1) -> None:
        """Frames of ``model``'s interval that got no boxes: ``errors`` or ``skipped``."""
        window = self._models.setdefault(model, _ModelWindow())
        setattr(window, kind, getattr(window, kind) + count)

    def rows(self, ts_ms: int, interval_s: float, worker_id: str, idle_model: Model | None) -> list[Row]:
        """One row per model seen (an idle worker still reports ``idle_model``: a heartbeat)."""
        if idle_model is not None:
            self._models.setdefault(idle_model, _ModelWindow())
        ts = datetime.fromtimestamp(ts_ms / 1000, timezone.utc)
        out = []
        for (name, version), w in sorted(self._models.items()):
            frames = sum(w.sizes)
            out.append({
                "ts_ms": ts_ms, "ts": ts, "worker_id": worker_id, "model_name": name,
                "model_version": version, "batches": len(w.sizes), "frames": frames,
                "errors": w.errors, "skipped": w.skipped,
                "batch_size_mean": frames / len(w.sizes) if w.sizes else 0.0,
                "batch_size_max": max(w.sizes, default=0),
                "queue_wait_ms_p50": _pct(w.queue_wait_ms, 50),
                "queue_wait_ms_p95": _pct(w.queue_wait_ms, 95),
                "inference_ms_p50": _pct(w.inference_ms, 50),
                "inference_ms_p95": _pct(w.inference_ms, 95),
                "frames_per_s": frames / interval_s if interval_s > 0 else 0.0,
                "lag_ms_max": w.lag_ms_max,
            })
        self._models.clear()
        return out


class ClickHouseStatsWriter:
    """Inserts stats rows; reconnects after a failure."""

    def __init__(self, cfg: ClickHouseConfig) -> None:
        self._cfg = cfg
        self._client = None

    def __call__(self, rows: list[Row]) -> None:
        if self._client is None:
            self._client = make_client(self._cfg)
        try:
            self._client.execute(
                f"INSERT INTO inference_stats ({', '.join(COLUMNS)}) VALUES",
                [tuple(row[c] for c in COLUMNS) for row in rows],
            )
        except BaseException:
            self._client = None
            raise


class StatsReporter:
    """Collects ``BatchStat``s and counters; every ``interval_s`` logs and writes a row per model.

    ``totals`` (counters since start) are what tests and benchmarks read.
    """

    def __init__(self, worker_id: str, interval_s: float, write: Callable[[list[Row]], None] | None,
                 current_model: Callable[[], Model], backlog_rows: int = 1000) -> None:
        self.worker_id = worker_id
        self.interval_s = interval_s
        self._write = write
        self._current_model = current_model
        self._lock = threading.Lock()
        self._window = StatsWindow()
        self._totals: Counter[str] = Counter()
        self._backlog: deque[Row] = deque(maxlen=backlog_rows)
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="infer-stats", daemon=True)
        self._last_s = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def record(self, stat: BatchStat) -> None:
        with self._lock:
            self._window.add(stat)
            self._totals.update(batches=1, frames=stat.frames)
        model = {"model_name": stat.model[0], "model_version": stat.model[1]}
        _BATCH_SIZE.record(stat.frames, model)
        _INFERENCE_MS.record(stat.inference_ms, model)
        _QUEUE_WAIT_MS.record(stat.queue_wait_ms, model)
        _LAG_MS.record(stat.lag_ms, model)

    def count(self, name: str, n: int = 1) -> None:
        """Bump a counter (``dlq``, ``skipped``, ``paused``, ``resumed``, ...)."""
        with self._lock:
            self._totals[name] += n
            if name in _WINDOW_COUNTS:
                self._window.add_count(self._current_model(), _WINDOW_COUNTS[name], n)

    def gauge_max(self, name: str, value: int) -> None:
        """Keep the largest ``value`` seen under ``name`` (e.g. frames in flight)."""
        with self._lock:
            self._totals[name] = max(self._totals[name], value)

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after one last report (its insert is tried once)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        else:
            self.report()

    def _loop(self) -> None:
        while not self._stop.wait(max(0.0, self._last_s + self.interval_s - time.monotonic())):
            self.report()
        self.report()

    def report(self) -> list[Row]:
        """Log this interval's figures and try to write them (and any backlog)."""
        now_s = time.monotonic()
        with self._lock:
            rows = self._window.rows(int(time.time() * 1000), now_s - self._last_s, self.worker_id,
                                     self._current_model())
            totals = dict(self._totals)
        self._last_s = now_s
        for row in rows:
            log.info(
                "stats %s:%s: %d frames in %d batches (mean %.1f), %.1f frames/s, inference p50 %.1f ms,"
                " queue wait p95 %.1f ms, lag max %.0f ms, errors %d, skipped %d; totals %s",
                row["model_name"], row["model_version"], row["frames"], row["batches"],
                row["batch_size_mean"], row["frames_per_s"], row["inference_ms_p50"],
                row["queue_wait_ms_p95"], row["lag_ms_max"], row["errors"], row["skipped"], totals,
            )
        self._flush(rows)
        return rows

    def _flush(self, rows: list[Row]) -> None:
        if self._write is None:
            return
        dropped = max(0, len(self._backlog) + len(rows) - (self._backlog.maxlen or 0))
        self._backlog.extend(rows)
        if dropped:
            self.count("stats_rows_dropped", dropped)
        if not self._backlog:
            return
        try:
            self._write(list(self._backlog))
        except Exception as exc:  # noqa: BLE001 - stats must never stop inference; retried later
            if not self._failing:
                log.warning("inference_stats: insert failed (%s); keeping %d rows, retrying every %.0f s",
                            exc, len(self._backlog), self.interval_s)
            self._failing = True
            return
        if self._failing:
            log.info("inference_stats: insert works again; wrote %d rows", len(self._backlog))
        self._failing = False
        self._backlog.clear()
