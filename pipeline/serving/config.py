"""The ``serving:`` section of the config file: listener, TLS, API keys, limits, batching."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from pipeline.config import Section


class ApiKeyConfig(Section):
    """One client allowed to call the server.

    Give the key itself (``key``) or only its SHA-256 hex digest (``sha256``), so the
    config file need not hold the secret. Clients send it as ``Authorization: Bearer KEY``
    or ``X-API-Key: KEY``.
    """

    #: Who the client is in audit lines and metrics; the key itself is never logged.
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    key: SecretStr | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    #: This client's sustained requests per second; unset uses ``serving.rate_limit_per_s``.
    rate_limit_per_s: float | None = Field(None, gt=0)
    #: This client's burst; unset uses ``serving.rate_limit_burst``.
    rate_limit_burst: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_secret(self) -> "ApiKeyConfig":
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of 'key' or 'sha256'")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("key must be at least 16 characters")
        return self

    def digest(self) -> bytes:
        """SHA-256 of the key: what a presented key is compared against."""
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        assert self.key is not None
        return hashlib.sha256(self.key.get_secret_value().encode()).digest()


class ServingConfig(Section):
    #: Answer unversioned requests with the primary of the ``model-control`` topic, followed
    #: live (promote/rollback apply); False serves ``models.primary`` for the process's life.
    follow_assignment: bool = True
    #: Listen address and port (``camcount serve --host/--port`` override them).
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: PEM certificate chain and private key: both set serves HTTPS only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    #: Clients allowed to call metadata, infer and /metrics (health probes need no key).
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    #: Serve without keys. Without keys and without this, the server only starts on a
    #: loopback address, so an open endpoint is never exposed by accident.
    allow_anonymous: bool = False

    #: ``NAME:VERSION`` entries to load; unset loads every version in the registry, so a
    #: promotion or a request for a named version finds it loaded.
    models: list[str] | None = None

    #: Images per model run; unset uses ``inference.max_batch``. 1 turns batching off.
    max_batch: int | None = Field(None, ge=1, le=256)
    #: The most a request waits for its batch to fill; unset uses ``inference.max_wait_ms``.
    #: Raising it gives bigger batches under light load at the cost of that much latency.
    max_wait_ms: int | None = Field(None, ge=0, le=10_000)
    #: Requests decoded and queued for the model, per model version. When full, new requests
    #: get 503 with Retry-After instead of growing memory (an image can be ~30 MB decoded).
    max_pending_requests: int = Field(64, ge=1)
    #: How long a request may wait for its detections before it gets 503.
    request_timeout_ms: int = Field(30_000, ge=1)

    #: Open connections at once; more get 503 from uvicorn before any work is done.
    max_connections: int = Field(1024, ge=1)
    #: Largest request body (after any Content-Encoding is undone); bigger gets 413.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    #: Largest image accepted; unset uses ``inference.max_width`` / ``max_height``.
    max_width: int | None = Field(None, ge=16)
    max_height: int | None = Field(None, ge=16)

    #: Token bucket per client (API key id, or address for anonymous clients): sustained
    #: requests per second and burst. Unset rate turns rate limiting off.
    rate_limit_per_s: float | None = Field(50.0, gt=0)
    rate_limit_burst: int = Field(100, ge=1)
    #: Clients whose buckets are remembered; the least recently seen are forgotten first.
    rate_limit_clients: int = Field(10_000, ge=1)

    #: One log line per request (who, model, version, status, latency) on the
    #: ``camcount.audit`` logger, at INFO.
    audit_log: bool = True

    @model_validator(mode="after")
    def _check(self) -> "ServingConfig":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        ids = [k.id for k in self.api_keys]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate api_keys ids: {', '.join(dupes)}")
        digests = [k.digest() for k in self.api_keys]
        if len(set(digests)) != len(digests):
            raise ValueError("two api_keys entries have the same key")
        return self
