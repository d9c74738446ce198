"""Build the server from the config and run it on uvicorn (HTTPS when a certificate is set)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Callable

import uvicorn

from pipeline.config import Settings
from pipeline.exceptions import CamcountError, ConfigError
from pipeline.serving.app import ServingState, create_app
from pipeline.serving.auth import Authenticator
from pipeline.serving.contract import ImageLimits
from pipeline.serving.guard import audit_log
from pipeline.serving.metrics import ServingMetrics
from pipeline.serving.models import ModelResolver, load_repository
from pipeline.serving.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve anyone on a non-loopback address without keys unless told to."""
    cfg = settings.serving
    if not cfg.api_keys and not cfg.allow_anonymous and not is_loopback(host):
        raise ConfigError(
            f"serving.api_keys is empty and {host} is not a loopback address: configure "
            "serving.api_keys, or set serving.allow_anonymous: true to serve without keys"
        )
    if not cfg.api_keys:
        log.warning("serving without API keys: anyone who reaches %s can call the models", host)


def build_state(settings: Settings, resolver: ModelResolver | None = None) -> ServingState:
    """Load the models (verified, warmed up) and everything the routes share."""
    from pipeline import telemetry

    cfg = settings.serving
    telemetry.setup(settings.telemetry, "serve")
    metrics = ServingMetrics()
    limits = ImageLimits(cfg.max_width or settings.inference.max_width,
                         cfg.max_height or settings.inference.max_height)
    repository = load_repository(settings, metrics, resolver)
    return ServingState(cfg, repository, metrics, limits, decode_slots=settings.inference.decode_threads)


def build_server(settings: Settings, host: str | None = None, port: int | None = None,
                 resolver: ModelResolver | None = None) -> uvicorn.Server:
    cfg = settings.serving
    host = host or cfg.host
    check_exposure(settings, host)
    state = build_state(settings, resolver)
    authenticator = Authenticator(cfg.api_keys, cfg.allow_anonymous)
    limiter = RateLimiter(cfg.rate_limit_per_s, cfg.rate_limit_burst, cfg.rate_limit_clients)
    if cfg.audit_log:
        audit_log.setLevel(logging.INFO)
    app = create_app(state, authenticator, limiter)
    config = uvicorn.Config(
        app,
        host=host,
        port=cfg.port if port is None else port,
        ssl_certfile=str(cfg.tls_cert_file) if cfg.tls_cert_file else None,
        ssl_keyfile=str(cfg.tls_key_file) if cfg.tls_key_file else None,
        limit_concurrency=cfg.max_connections,
        log_config=None,  # the CLI configured logging; our audit line replaces the access log
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def listening_url(server: uvicorn.Server) -> str:
    """``http(s)://host:port`` actually bound (the port may have been 0)."""
    sockets = [s for srv in server.servers for s in srv.sockets]
    host, port = sockets[0].getsockname()[:2]
    scheme = "https" if server.config.is_ssl else "http"
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


async def serve(server: uvicorn.Server, on_listening: Callable[[str], None]) -> None:
    """Run until SIGINT/SIGTERM; ``on_listening(url)`` once the socket is bound.

    Raises ``CamcountError`` when uvicorn cannot start (it logged why, e.g. the port is taken).
    """

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        on_listening(listening_url(server))

    announcer = asyncio.create_task(announce())
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits on a failed start-up
        config = server.config
        raise CamcountError(f"could not serve on {config.host}:{config.port} (exit {exc.code})") from None
    finally:
        announcer.cancel()
