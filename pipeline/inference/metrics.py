"""OpenTelemetry metrics of an inference worker, read from what it keeps anyway.

Counters come from ``StatsReporter.totals()``; batch size and latency histograms are
recorded by ``StatsReporter.record`` (``stats.py``). Queue depth, frames in flight and
consumer lag are gauges read at collection time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipeline import telemetry

if TYPE_CHECKING:
    from pipeline.inference.worker import InferenceWorker

METER = "camcount.inference"
#: ``StatsReporter`` total -> (instrument name, description).
COUNTERS = {
    "frames": ("camcount.inference.frames_in", "Frames run through the model (or passed on as end markers)"),
    "finished": ("camcount.inference.frames_out", "Frames whose detections or dead letter the broker acknowledged"),
    "batches": ("camcount.inference.batches", "Model runs"),
    "dlq": ("camcount.inference.frames_dead_lettered", "Frames sent to the dead-letter topic"),
    "skipped": ("camcount.inference.frames_dropped", "Frames dropped as older than max_lag_ms"),
    "paused": ("camcount.inference.pauses", "Times the worker paused its partitions (pipeline full)"),
}


def register(worker: "InferenceWorker") -> None:
    for total, (name, description) in COUNTERS.items():
        telemetry.observe(METER, name, "counter", worker,
                          lambda w, t=total: [(w.stats.totals().get(t, 0), {"worker_id": w.worker_id})],
                          unit="{frame}", description=description)
    telemetry.observe(METER, "camcount.inference.queue_depth", "gauge", worker,
                      lambda w: [(w.queue_depth(), {"worker_id": w.worker_id})], unit="{frame}",
                      description="Frames polled but not yet in a model run")
    telemetry.observe(METER, "camcount.inference.in_flight", "gauge", worker,
                      lambda w: [(w.in_flight(), {"worker_id": w.worker_id})], unit="{frame}",
                      description="Frames polled whose output is not yet acknowledged")
    telemetry.observe(METER, "camcount.inference.consumer_lag", "gauge", worker, _lag, unit="{message}",
                      description="Messages behind the partition's end (librdkafka statistics)")


class ConsumerLag:
    """Per-partition consumer lag from librdkafka's statistics (``stats_cb``, served by ``poll``
    in the worker's thread: the consumer itself is never called from the metrics thread)."""

    #: librdkafka ``statistics.interval.ms``: how fresh the lag is, at a JSON parse per interval.
    INTERVAL_MS = 5000

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], int] = {}

    def config(self) -> dict[str, Any]:
        return {"statistics.interval.ms": self.INTERVAL_MS, "stats_cb": self.update}

    def update(self, stats_json: str) -> None:
        stats = json.loads(stats_json)
        self.partitions = {
            (topic, int(p)): part["consumer_lag"]
            for topic, t in stats.get("topics", {}).items() for p, part in t.get("partitions", {}).items()
            if int(p) >= 0 and part.get("consumer_lag", -1) >= 0
        }


def _lag(worker: "InferenceWorker") -> list[tuple[float, dict[str, Any]]]:
    assigned = worker.assignment
    return [(lag, {"worker_id": worker.worker_id, "topic": t, "partition": p})
            for (t, p), lag in list(worker.lag.partitions.items()) if (t, p) in assigned]
