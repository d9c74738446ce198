"""Trace context through Kafka headers, and the health endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from pipeline.config import TelemetryConfig
from pipeline.telemetry import HealthServer, extract, inject, setup


def test_context_crosses_a_kafka_hop() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("ingest") as parent:
        headers = inject([("other", b"x"), ("traceparent", b"stale")])
    assert [k for k, _ in headers].count("traceparent") == 1
    assert ("other", b"x") in headers
    with tracer.start_as_current_span("infer", context=extract(headers)) as child:
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id
        assert child.parent.span_id == parent.get_span_context().span_id


def test_missing_or_bad_traceparent_starts_a_new_trace() -> None:
    assert trace.get_current_span(extract(None)).get_span_context().is_valid is False
    assert trace.get_current_span(extract([("traceparent", b"garbage")])).get_span_context().is_valid is False


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_endpoint_reports_liveness_readiness_and_metrics() -> None:
    setup(TelemetryConfig(), "test")
    ready = {"value": False}
    server = HealthServer("127.0.0.1", 0, lambda: ready["value"]).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/livez")[0] == 200
        assert _get(base + "/readyz")[0] == 503
        ready["value"] = True
        assert _get(base + "/readyz")[0] == 200
        from opentelemetry import metrics

        metrics.get_meter("test").create_counter("camcount_test_frames").add(3)
        status, body = _get(base + "/metrics")
        assert status == 200 and b"camcount_test_frames" in body
    finally:
        server.stop()
