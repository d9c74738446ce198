"""API keys and bearer tokens: who is calling, decided in constant time.

A presented key is hashed with SHA-256 and compared with every configured key's digest
by ``hmac.compare_digest``, without stopping at the first match, so neither the time
taken nor its length says which key (or how much of one) was right. Keys are never
logged: callers are named by their configured ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping, Sequence

from pipeline.serving.config import ApiKeyConfig
from pipeline.serving.exceptions import Unauthorized

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Client:
    """An authenticated caller. ``rate_key`` is what its token bucket is keyed by."""

    id: str
    rate_key: str
    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (header names
    lower-case, as ASGI gives them); None when neither is sent."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key is not None else None


class Authenticator:
    """Maps request headers to a ``Client``, or raises ``Unauthorized`` (401)."""

    def __init__(self, keys: Sequence[ApiKeyConfig], allow_anonymous: bool) -> None:
        self._keys = [(k.digest(), k) for k in keys]
        self.allow_anonymous = allow_anonymous and not keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, headers: Mapping[str, str], address: str) -> Client:
        if not self._keys:
            return Client(ANONYMOUS, f"addr:{address}")
        key = presented_key(headers)
        if key is None:
            raise Unauthorized("missing credentials: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found: ApiKeyConfig | None = None
        for known, config in self._keys:
            if hmac.compare_digest(digest, known):
                found = config
        if found is None:
            raise Unauthorized("invalid API key")
        return Client(found.id, f"key:{found.id}", found.rate_limit_per_s, found.rate_limit_burst)
