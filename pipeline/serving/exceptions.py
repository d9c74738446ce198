"""Errors of the serving package: each carries the HTTP status the client gets.

The server turns any ``ServingError`` into the protocol's error shape,
``{"error": "<message>"}`` with ``status``, so a client sees what was wrong.
"""

from __future__ import annotations

import math

from pipeline.exceptions import CamcountError


class ServingError(CamcountError):
    """A request that cannot be served; ``message`` is shown to the client."""

    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(ServingError):
    """Malformed request: not the protocol's shape, wrong datatype or shape, bad image."""

    status = 400


class Unauthorized(ServingError):
    """No credentials, or credentials that match no configured key."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, {"WWW-Authenticate": 'Bearer realm="camcount"'})


class NotFound(ServingError):
    """Unknown model or version."""

    status = 404


class PayloadTooLarge(ServingError):
    """Body or image over a configured limit."""

    status = 413


class UnsupportedMediaType(ServingError):
    """A Content-Encoding the server does not undo."""

    status = 415


class RateLimited(ServingError):
    """The client's token bucket is empty; ``retry_after_s`` until the next token."""

    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})
        self.retry_after_s = retry_after_s


class Unavailable(ServingError):
    """Model not ready, queue full or timed out: try again later."""

    status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})
