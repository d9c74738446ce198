"""Serving metrics reach OpenTelemetry with the labels and buckets operators query by."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pipeline.serving.metrics import BATCH_BUCKETS, ServingMetrics


def collect(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    return {m.name: list(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_requests_errors_batches_and_stages() -> None:
    reader = InMemoryMetricReader()
    metrics = ServingMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
    metrics.request("infer", "yolox-nano", "1", 200, 0.03)
    metrics.request("infer", "yolox-nano", "1", 413, 0.001, "payload_too_large")
    metrics.batch("yolox-nano", "1", 3, [0.01, 0.02, 0.0])
    metrics.observe("yolox-nano", "1", "run", 0.02, 3)
    points = collect(reader)

    requests = {p.attributes["status"]: p.value for p in points["camcount.serving.requests"]}
    assert requests == {"200": 1, "413": 1}
    [error] = points["camcount.serving.errors"]
    assert error.attributes == {"endpoint": "infer", "reason": "payload_too_large"} and error.value == 1
    [batch] = points["camcount.serving.batch_size"]
    assert tuple(batch.explicit_bounds) == BATCH_BUCKETS and batch.count == 1 and batch.sum == 3
    assert batch.bucket_counts[1] == 0 and batch.bucket_counts[2] == 1  # 3 falls in (2, 4]
    [wait] = points["camcount.serving.queue_wait"]
    assert wait.count == 3
    [stage] = points["camcount.serving.stage.duration"]
    assert stage.attributes == {"model": "yolox-nano", "version": "1", "stage": "run"}
    [latency] = points["camcount.serving.request.duration"]
    assert latency.count == 2  # both requests, one label set (status is not a latency label)
