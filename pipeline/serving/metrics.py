"""Serving metrics as OpenTelemetry instruments (``pipeline.telemetry`` installs the provider).

Requests, errors, request latency, queue wait and batch sizes, labelled by endpoint,
model and version; ``ServingMetrics`` is also the detector's ``LatencyRecorder``, so its
per-stage latencies (preprocess, run, postprocess) are exported beside them. The server
exposes them at ``/metrics`` in the Prometheus text format (through the Prometheus
reader ``telemetry.setup`` installs) and sends them over OTLP when that is configured.
"""

from __future__ import annotations

from typing import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import Meter

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Every instrument the server records; ``meter`` defaults to the global provider's."""

    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("pipeline.serving")
        self._requests = meter.create_counter(
            "camcount.serving.requests", unit="{request}",
            description="HTTP requests by endpoint, model, version and status.")
        self._errors = meter.create_counter(
            "camcount.serving.errors", unit="{request}",
            description="Requests answered with an error, by endpoint and reason.")
        self._latency = meter.create_histogram(
            "camcount.serving.request.duration", unit="s",
            description="Request latency, from arrival to the response.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S)
        self._queue_wait = meter.create_histogram(
            "camcount.serving.queue_wait", unit="s",
            description="Time an image waited in the batcher for its model run.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S)
        self._batch_size = meter.create_histogram(
            "camcount.serving.batch_size", unit="{image}", description="Images per model run.",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS)
        self._stage = meter.create_histogram(
            "camcount.serving.stage.duration", unit="s",
            description="Detector stage latency per batch (preprocess, run, postprocess).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S)

    def request(self, endpoint: str, model: str, version: str, status: int, seconds: float,
                error: str | None = None) -> None:
        """One finished HTTP request; ``error`` is the reason when ``status`` >= 400."""
        labels = {"endpoint": endpoint, "model": model, "version": version}
        self._requests.add(1, {**labels, "status": str(status)})
        self._latency.record(seconds, labels)
        if status >= 400:
            self._errors.add(1, {"endpoint": endpoint, "reason": error or f"http_{status}"})

    def batch(self, model: str, version: str, size: int, queue_waits_s: Iterable[float]) -> None:
        """One model run of ``size`` images and how long each waited for it."""
        labels = {"model": model, "version": version}
        self._batch_size.record(size, labels)
        for wait_s in queue_waits_s:
            self._queue_wait.record(wait_s, labels)

    def observe(self, model: str, version: str, stage: str, seconds: float, frames: int) -> None:
        """``LatencyRecorder``: one detector stage of one batch."""
        self._stage.record(seconds, {"model": model, "version": version, "stage": stage})
