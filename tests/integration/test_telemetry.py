"""OpenTelemetry across the real broker: one trace per frame from ingest through inference,
and a worker's health endpoint (liveness, readiness, Prometheus metrics)."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import telemetry
from pipeline.codec import DETECTIONS, default_codec
from pipeline.config import Settings, TelemetryConfig
from pipeline.ingest.worker import IngestWorker
from pipeline.kafka import topics
from tests.conftest import with_overrides
from tests.integration.ingest_support import free_port
from tests.integration.test_inference_support import (WorkerThread, group, read_topic, start_worker_process,
                                                      write_config)

FRAMES = 4


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Finished spans of this process (the global SDK provider, as ``camcount`` installs it)."""
    telemetry.setup(TelemetryConfig(), "test")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays, exporting nowhere


def test_one_trace_follows_a_frame_from_ingest_through_inference(kafka_settings: Settings, pets09: Path,
                                                                   spans: InMemorySpanExporter):
    settings = with_overrides(kafka_settings, cameras=[{"id": "pets09", "source": str(pets09), "fps": 5}])
    IngestWorker(settings, max_frames=FRAMES).run()
    WorkerThread(settings, group_id=group(settings, "otel"), max_frames=FRAMES, write_stats=False).start().join()

    finished = spans.get_finished_spans()
    ingest = {s.attributes["seq"]: s for s in finished if s.name == "ingest.frame"}
    infer = {s.context.span_id: s for s in finished if s.name == "infer"}
    assert sorted(ingest) == list(range(FRAMES))
    msgs = read_topic(settings, topics.DETECTIONS, until=lambda m: len(m) >= FRAMES, timeout_s=30)
    assert len(msgs) == FRAMES
    for msg in msgs:
        seq = default_codec().decode_as(msg.value(), DETECTIONS)["seq"]
        carried = trace.get_current_span(telemetry.extract(msg.headers())).get_span_context()
        root = ingest[seq].context
        span = infer[carried.span_id]  # the detections carry the context of the frame's "infer" span ...
        assert carried.trace_id == root.trace_id == span.context.trace_id  # ... in the frame's trace
        assert span.parent.span_id == root.span_id and ingest[seq].parent is None
        assert span.attributes["seq"] == seq and span.attributes["camera_id"] == "pets09"
        assert span.start_time >= ingest[seq].start_time and span.end_time >= span.start_time


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def _wait_for(url: str, status: int, timeout_s: float) -> tuple[int, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = _get(url)
        if got[0] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_infer_health_endpoint(settings: Settings, tmp_path: Path):
    port = free_port()
    proc = start_worker_process(write_config(tmp_path / "c.yaml", settings), tmp_path / "infer.log",
                                "--static", "--group", group(settings, "health"), "--health-port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_for(base + "/livez", 200, 60)[0] == 200, (tmp_path / "infer.log").read_text()
        assert _wait_for(base + "/readyz", 200, 90)[0] == 200, (tmp_path / "infer.log").read_text()
        status, body = _get(base + "/metrics")
        assert status == 200
        for name in ("camcount_inference_frames_in", "camcount_inference_frames_out",
                     "camcount_inference_queue_depth", "camcount_inference_frames_dead_lettered"):
            assert name in body, name
        assert _get(base + "/nothing")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
