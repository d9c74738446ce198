"""The ASGI layer in front of every route: authentication, rate limit, metrics, audit line.

Health probes (``/v2/health/*``) pass without a key, as load balancers and Kubernetes
call them. Everything else needs a configured key when keys are configured (401), then
a token from the client's bucket (429 with Retry-After). Every request but the probes
gets one audit line on the ``pipeline.serving.audit`` logger: who (the key's id, never
the key), client address, method, path, model, version, status, latency, body bytes;
never image content.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Awaitable, Callable, MutableMapping

from pipeline.serving.auth import Authenticator
from pipeline.serving.exceptions import RateLimited, ServingError
from pipeline.serving.metrics import ServingMetrics
from pipeline.serving.protocol import error_body
from pipeline.serving.ratelimit import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

audit_log = logging.getLogger("pipeline.serving.audit")
#: Key of the per-request dict in ``scope["state"]`` that routes fill (model, version, ...).
AUDIT_KEY = "camcount.audit"
_UNSAFE = re.compile(r"[^\x21-\x7e]")


def endpoint_of(path: str) -> str:
    """A fixed label for a path (metrics never get a label per model name typed by a client)."""
    if path.startswith("/v2/health/"):
        return "health"
    if path in ("/v2", "/v2/"):
        return "server_metadata"
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v2/models/"):
        if path.endswith("/infer"):
            return "infer"
        return "model_ready" if path.endswith("/ready") else "model_metadata"
    return "other"


def _clean(value: object) -> str:
    """A log-safe token: no spaces, newlines or control characters (no log injection)."""
    text = str(value)[:200]
    return _UNSAFE.sub("?", text) or "-"


async def send_error(send: Send, exc: ServingError) -> None:
    body = error_body(exc.message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the app: auth, rate limit, then the route; records metrics and audit."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, limiter: RateLimiter,
                 metrics: ServingMetrics, audit: bool = True) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limiter = limiter
        self.metrics = metrics
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        endpoint = endpoint_of(scope["path"])
        info: dict[str, Any] = {"who": "-", "model": "-", "version": "-", "bytes_in": 0, "error": None}
        scope.setdefault("state", {})[AUDIT_KEY] = info
        status = [500]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if endpoint != "health":
                self._admit(scope, info)
            await self.app(scope, receive, recording_send)
        except ServingError as exc:
            info["error"] = reason_of(exc)
            await send_error(recording_send, exc)
        finally:
            self._record(scope, endpoint, info, status[0], time.perf_counter() - start)

    def _admit(self, scope: Scope, info: dict[str, Any]) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = self.authenticator.authenticate(headers, _address(scope))
        info["who"] = client.id
        wait_s = self.limiter.check(client.rate_key, client.rate_limit_per_s, client.rate_limit_burst)
        if wait_s > 0:
            raise RateLimited(f"rate limit exceeded for {client.id}; retry in {wait_s:.2f} s", wait_s)

    def _record(self, scope: Scope, endpoint: str, info: dict[str, Any], status: int, seconds: float) -> None:
        model, version = info["model"], info["version"]
        self.metrics.request(endpoint, model, version, status, seconds, info["error"])
        if self.audit and endpoint != "health":
            audit_log.info(
                "who=%s client=%s method=%s path=%s model=%s version=%s status=%d latency_ms=%.1f bytes_in=%d",
                _clean(info["who"]), _clean(_address(scope)), _clean(scope["method"]), _clean(scope["path"]),
                _clean(model), _clean(version), status, seconds * 1000, info["bytes_in"])


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def reason_of(exc: ServingError) -> str:
    """``PayloadTooLarge`` -> ``payload_too_large``: the error metric's reason label."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
