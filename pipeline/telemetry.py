"""OpenTelemetry for every worker: traces across Kafka hops, metrics, a health endpoint.

``setup(cfg, service)`` installs the global tracer and meter providers once per process:
OTLP/HTTP export when ``telemetry.otlp_endpoint`` is set, console export when
``telemetry.console`` is on, nothing otherwise (instruments still work, at no cost).
Metrics are also readable at ``/metrics`` (Prometheus text) on the health server.

Trace context crosses Kafka in the W3C ``traceparent`` header: a producer calls
``inject(headers)``, a consumer ``extract(headers)`` and starts its span as a child, so
one frame can be followed from capture to the ClickHouse row.
"""

from __future__ import annotations

import argparse
import logging
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Literal, Sequence

from opentelemetry import context, metrics, trace
from opentelemetry.metrics import Observation
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeline.config import Settings, TelemetryConfig

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_PROPAGATOR = TraceContextTextMapPropagator()
_setup_lock = threading.Lock()
_installed = False


def setup(cfg: TelemetryConfig, service: str) -> None:
    """Install tracer and meter providers for this process (first call wins)."""
    global _installed
    with _setup_lock:
        if _installed:
            return
        _installed = True
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    resource = Resource.create({"service.name": f"{cfg.service_name}-{service}"})
    tracer_provider = TracerProvider(resource=resource)
    readers = [PrometheusMetricReader()]
    interval = cfg.metrics_interval_ms
    if cfg.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = cfg.otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                                                     export_interval_millis=interval))
    if cfg.console:
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode()))


class _HeaderGetter(Getter[Sequence[tuple[str, bytes | None]]]):
    def get(self, carrier, key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier or () if k == key and v is not None]
        return values or None

    def keys(self, carrier) -> list[str]:
        return [k for k, _ in carrier or ()]


def inject(headers: Headers | None = None, ctx: context.Context | None = None) -> Headers:
    """Kafka headers carrying the current (or given) span's context as ``traceparent``."""
    headers = list(headers or [])
    _PROPAGATOR.inject(headers, context=ctx, setter=_HeaderSetter())
    return headers


def extract(headers: Sequence[tuple[str, bytes | None]] | None) -> context.Context:
    """The trace context a producer put in the headers (empty context if none)."""
    return _PROPAGATOR.extract(headers or [], getter=_HeaderGetter())


def links(headers_list: Iterable[Sequence[tuple[str, bytes | None]] | None], limit: int = 128) -> list[trace.Link]:
    """Span links to the (valid, distinct) contexts carried by these messages' headers, at most ``limit``."""
    out: dict[tuple[int, int], trace.Link] = {}
    for headers in headers_list:
        span_context = trace.get_current_span(extract(headers)).get_span_context()
        if span_context.is_valid:
            out.setdefault((span_context.trace_id, span_context.span_id), trace.Link(span_context))
            if len(out) >= limit:
                break
    return list(out.values())


# -- metrics read from counters the workers keep anyway ------------------------------------------

Reading = Iterable[tuple[float, dict[str, Any]]]
_observed: dict[str, list[tuple[weakref.ref, Callable[[Any], Reading]]]] = {}
_observed_lock = threading.Lock()


def observe(meter_name: str, name: str, kind: Literal["counter", "gauge", "updown"], owner: object,
            read: Callable[[Any], Reading], *, unit: str = "", description: str = "") -> None:
    """Report ``read(owner)`` -> ``[(value, attributes), ...]`` as the observable instrument ``name``.

    The worker's own counters stay the single source (nothing is counted twice). Several owners
    (e.g. workers of a test process) may report under one name; each is held weakly and drops
    out when collected. A ``read`` that raises (a closed consumer) reports nothing that time.
    """
    with _observed_lock:
        sources = _observed.get(name)
        if sources is None:
            sources = _observed[name] = []
            meter = metrics.get_meter(meter_name)
            create = {"counter": meter.create_observable_counter, "gauge": meter.create_observable_gauge,
                      "updown": meter.create_observable_up_down_counter}[kind]
            create(name, [lambda options, s=sources: _collect(s)], unit=unit, description=description)
        sources.append((weakref.ref(owner), read))


def _collect(sources: list[tuple[weakref.ref, Callable[[Any], Reading]]]) -> list[Observation]:
    out: list[Observation] = []
    with _observed_lock:
        live = [(ref(), read) for ref, read in sources]
        sources[:] = [source for source, (owner, _) in zip(sources, live) if owner is not None]
    for owner, read in live:
        if owner is None:
            continue
        try:
            out.extend(Observation(value, attributes) for value, attributes in read(owner))
        except Exception as exc:  # noqa: BLE001 - a metrics scrape must never break a worker
            log.debug("metric source %r failed: %s", owner, exc)
    return out


# -- worker start-up -----------------------------------------------------------------------------


def add_health_option(parser: argparse.ArgumentParser) -> None:
    """``--health-port``: where a worker command serves /livez, /readyz and /metrics."""
    parser.add_argument("--health-port", type=int, metavar="PORT", default=None,
                        help="serve /livez, /readyz and /metrics on this port (0: any free port; "
                             "default: telemetry.health_port, else no endpoint)")


def start_worker(settings: Settings, service: str, ready: Callable[[], bool],
                 health_port: int | None = None) -> "HealthServer | None":
    """``setup`` telemetry for a worker process and start its health endpoint if a port is set."""
    cfg = settings.telemetry
    setup(cfg, service)
    port = health_port if health_port is not None else cfg.health_port
    if port is None:
        return None
    return HealthServer(cfg.health_host, port, ready).start()


class HealthServer:
    """``/livez`` (the process runs), ``/readyz`` (``ready()`` is true) and ``/metrics``."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        self._ready = ready
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/livez":
                    self._send(200, b"ok\n")
                elif self.path == "/readyz":
                    try:
                        ok = bool(outer._ready())
                    except Exception:  # noqa: BLE001 - a failing check means not ready
                        ok = False
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                elif self.path == "/metrics":
                    from prometheus_client import generate_latest

                    self._send(200, generate_latest(), "text/plain; version=0.0.4")
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # probes every few seconds: keep logs clean
                pass

        return Handler

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("health endpoint on http://%s:%d (/livez, /readyz, /metrics)", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
