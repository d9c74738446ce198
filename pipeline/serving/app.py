"""The Open Inference Protocol v2 REST routes, on Starlette.

    GET  /v2/health/live | /v2/health/ready          200, or 400 when not ready (the spec's 4xx)
    GET  /v2                                          server metadata
    GET  /v2/models/{name}[/versions/{version}]       model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready
    POST /v2/models/{name}[/versions/{version}]/infer
    GET  /metrics                                     Prometheus text (OpenTelemetry metrics)

An infer request is read with a size limit, parsed, its image decoded and letterboxed in
a worker thread (a bounded number at once: OpenCV releases the GIL, and decoded images
are big), queued to the model's batcher, and awaited; errors come back as
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import zlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline import __version__
from pipeline.inference.base import PreparedBatch
from pipeline.serving.auth import Authenticator
from pipeline.serving.config import ServingConfig
from pipeline.serving.contract import (
    ImageLimits, check_outputs, detection_outputs, image_from_request, model_metadata, select_outputs)
from pipeline.serving.exceptions import BadRequest, PayloadTooLarge, ServingError, UnsupportedMediaType, Unavailable
from pipeline.serving.guard import AUDIT_KEY, Guard, reason_of
from pipeline.serving.metrics import ServingMetrics
from pipeline.serving.models import ModelRepository, ModelRunner
from pipeline.serving.protocol import InferRequest, encode_infer_response, error_body, parse_infer_request
from pipeline.serving.ratelimit import RateLimiter

log = logging.getLogger(__name__)
JSON = "application/json"
#: An over-limit body is read and discarded up to this many times the limit, so the
#: client gets its 413 instead of a reset connection; beyond it the connection is cut.
DRAIN_FACTOR = 4
SERVER_EXTENSIONS = ["binary_tensor_data"]


@dataclass
class ServingState:
    """Everything the routes need, built once at start-up."""

    config: ServingConfig
    repository: ModelRepository
    metrics: ServingMetrics
    limits: ImageLimits
    decode_slots: int = 4

    def __post_init__(self) -> None:
        self.decode_limiter = anyio.CapacityLimiter(self.decode_slots)


Handler = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=JSON)


def _errors_as_responses(handler: Handler) -> Handler:
    """ServingError -> its status and ``{"error": ...}``; anything else -> logged 500."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ServingError as exc:
            request.scope["state"][AUDIT_KEY]["error"] = reason_of(exc)
            return Response(error_body(exc.message), exc.status, exc.headers, JSON)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            request.scope["state"][AUDIT_KEY]["error"] = "internal"
            return Response(error_body("internal server error"), 500, media_type=JSON)

    return wrapped


def _runner(state: ServingState, request: Request) -> ModelRunner:
    runner = state.repository.get(request.path_params["name"], request.path_params.get("version"))
    audit = request.scope["state"][AUDIT_KEY]
    audit["model"], audit["version"] = runner.name, runner.version
    return runner


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, after any gzip/deflate Content-Encoding is undone; 413 over ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_FACTOR * max_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= max_bytes:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * max_bytes:
            break
    request.scope["state"][AUDIT_KEY]["bytes_in"] = size
    if size > max_bytes:
        raise PayloadTooLarge(f"request body of {size} bytes exceeds the limit of {max_bytes} bytes")
    return decompress(b"".join(chunks), request.headers.get("content-encoding", ""), max_bytes)


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"the {encoding} body does not decompress: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed request body exceeds the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise BadRequest(f"the {encoding} body is truncated")
    return out


def _header_length(request: Request) -> int | None:
    value = request.headers.get("inference-header-content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BadRequest(f"Inference-Header-Content-Length must be a byte count, got {value!r}")
    return int(value)


def prepare(runner: ModelRunner, body: bytes, header_length: int | None,
            limits: ImageLimits) -> tuple[InferRequest, PreparedBatch]:
    """Parse the request, decode and letterbox its image (runs in a worker thread)."""
    request = parse_infer_request(body, header_length)
    check_outputs(request)  # unknown output names: 400 before the model runs
    return request, runner.prepare(image_from_request(request, limits))


async def infer(state: ServingState, request: Request) -> Response:
    runner = _runner(state, request)
    if not runner.ready:
        raise Unavailable(f"model {runner.name} version {runner.version} is not ready")
    body = await read_body(request, state.config.max_body_bytes)
    header_length = _header_length(request)
    infer_request, prepared = await anyio.to_thread.run_sync(
        prepare, runner, body, header_length, state.limits, limiter=state.decode_limiter)
    del body
    future = runner.submit(prepared)
    timeout_s = state.config.request_timeout_ms / 1000
    try:
        detections = await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except asyncio.TimeoutError:
        raise Unavailable(f"no result from {runner.name}:{runner.version} within {timeout_s:g} s") from None
    height, width = prepared.metas[0].height, prepared.metas[0].width
    outputs = select_outputs(detection_outputs(detections, height, width, runner.class_names), infer_request)
    payload, header_length = encode_infer_response(runner.name, runner.version, infer_request.id, outputs)
    if header_length is None:
        return Response(payload, media_type=JSON)
    return Response(payload, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


async def model_metadata_route(state: ServingState, request: Request) -> Response:
    runner = _runner(state, request)
    return _json(model_metadata(runner.name, state.repository.versions(runner.name), state.limits))


async def model_ready(state: ServingState, request: Request) -> Response:
    runner = _runner(state, request)
    body = {"name": runner.name, "version": runner.version, "ready": runner.ready}
    return _json(body, 200 if runner.ready else 400)


async def server_metadata(state: ServingState, request: Request) -> Response:
    return _json({"name": "camcount", "version": __version__, "extensions": SERVER_EXTENSIONS})


async def live(state: ServingState, request: Request) -> Response:
    return _json({"live": True})


async def ready(state: ServingState, request: Request) -> Response:
    is_ready = state.repository.ready
    return _json({"ready": is_ready}, 200 if is_ready else 400)


async def metrics(state: ServingState, request: Request) -> Response:
    """Prometheus text of this process's OpenTelemetry metrics (``telemetry.setup``'s reader)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return Response(error_body(f"no route {request.method} {request.url.path}"), status, media_type=JSON)


def create_app(state: ServingState, authenticator: Authenticator, limiter: RateLimiter) -> Guard:
    """The ASGI app: routes behind the guard; the lifespan starts and stops the model threads."""

    def route(path: str, handler: Callable[[ServingState, Request], Awaitable[Response]],
              methods: list[str]) -> Route:
        return Route(path, _errors_as_responses(functools.partial(handler, state)), methods=methods)

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [
        route("/v2/health/live", live, ["GET"]),
        route("/v2/health/ready", ready, ["GET"]),
        route("/v2", server_metadata, ["GET"]),
        route("/metrics", metrics, ["GET"]),
    ]
    for prefix in (model, versioned):
        routes += [
            route(prefix, model_metadata_route, ["GET"]),
            route(prefix + "/ready", model_ready, ["GET"]),
            route(prefix + "/infer", infer, ["POST"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.repository.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(state.repository.close)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    return Guard(app, authenticator, limiter, state.metrics, audit=state.config.audit_log)
