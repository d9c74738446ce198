"""ClickHouse connection helpers: one client factory for every writer and reader."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from pipeline.config import ClickHouseConfig
from pipeline.exceptions import ServiceUnavailableError

T = TypeVar("T")

#: Exceptions that mean "the server is not reachable right now": retry, don't give up.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ClickHouseError)


def make_client(cfg: ClickHouseConfig, database: str | None = None, **settings: Any) -> Client:
    """A native-protocol client; ``database`` defaults to the configured one."""
    return Client(
        host=cfg.host,
        port=cfg.port,
        database=database if database is not None else cfg.database,
        user=cfg.user,
        password=cfg.password.get_secret_value(),
        secure=cfg.secure,
        verify=cfg.verify,
        ca_certs=cfg.ca_certs,
        connect_timeout=cfg.connect_timeout_s,
        send_receive_timeout=60,
        settings=settings or None,
    )


def server_version(client: Client) -> tuple[int, ...]:
    """The server's version as a tuple of ints, e.g. ``(18, 16, 1)``."""
    (version,), = client.execute("SELECT version()")
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def wait_until_up(cfg: ClickHouseConfig, timeout_s: float = 30.0) -> tuple[int, ...]:
    """Block until the server answers (returns its version) or raise ``ServiceUnavailableError``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return server_version(make_client(cfg, database="default"))
        except TRANSIENT_ERRORS as exc:
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"ClickHouse at {cfg.host}:{cfg.port} did not answer in {timeout_s:.0f}s: {exc}"
                ) from None
            time.sleep(0.5)


def with_retry(fn: Callable[[], T], *, attempts: int | None, base_delay_s: float = 0.5,
               max_delay_s: float = 30.0, on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """Call ``fn`` until it succeeds, backing off exponentially on transient errors.

    ``attempts=None`` retries forever: a sink must not drop a batch because the server was
    down for a while, it must wait (its consumer stays paused meanwhile).
    """
    attempt = 0
    while True:
        try:
            return fn()
        except TRANSIENT_ERRORS as exc:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            if on_retry:
                on_retry(attempt, exc)
            time.sleep(min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))
