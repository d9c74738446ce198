"""librdkafka settings built from config, so every worker connects (and secures) the same way."""

from __future__ import annotations

import ssl
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import KafkaConfig
from pipeline.exceptions import KafkaAuthenticationError, ServiceUnavailableError

#: librdkafka errors that mean "these credentials / this certificate are refused".
_AUTH_ERRORS = (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED)


def common_config(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection and security settings shared by producers, consumers and admin clients."""
    conf: dict[str, Any] = {
        "bootstrap.servers": cfg.bootstrap_servers,
        "client.id": cfg.client_id,
        "security.protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        conf["sasl.mechanism"] = cfg.sasl_mechanism
    if cfg.sasl_username is not None:
        conf["sasl.username"] = cfg.sasl_username
    if cfg.sasl_password is not None:
        conf["sasl.password"] = cfg.sasl_password.get_secret_value()
    if cfg.ssl_ca_location:
        conf["ssl.ca.location"] = cfg.ssl_ca_location
    conf.update(cfg.extra)
    return conf


def check_connection(cfg: KafkaConfig, timeout_s: float = 10.0) -> None:
    """Fetch cluster metadata once, turning a refused login into a clear error.

    librdkafka only says "broker transport failure" to the caller; the reason (SASL
    authentication failed, TLS handshake failed) comes through ``error_cb``, so it is
    collected here and named. Raises ``KafkaAuthenticationError`` (credentials or
    certificate refused) or ``ServiceUnavailableError`` (no answer in ``timeout_s``).
    """
    errors: list[KafkaError] = []
    admin = AdminClient(common_config(cfg) | {"error_cb": errors.append, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
        return
    except KafkaException as exc:
        failure = exc.args[0]
    admin.poll(0)  # serve the queued error callbacks
    refused = [e for e in errors if e.code() in _AUTH_ERRORS]
    if refused:
        who = f"user {cfg.sasl_username!r} with {cfg.sasl_mechanism}" if cfg.sasl_mechanism else "this client"
        raise KafkaAuthenticationError(
            f"Kafka at {cfg.bootstrap_servers} ({cfg.security_protocol}) refused {who}: {refused[-1].str()}; "
            "check kafka.sasl_username / kafka.sasl_password (CAMCOUNT_KAFKA_SASL_PASSWORD) "
            "and kafka.ssl_ca_location"
        )
    detail = errors[-1].str() if errors else failure.str()
    raise ServiceUnavailableError(f"Kafka at {cfg.bootstrap_servers} did not answer in {timeout_s:.0f}s: {detail}")


def producer_config(cfg: KafkaConfig, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer (no duplicates from its own retries), acks from all replicas."""
    conf = common_config(cfg) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    conf.update(overrides)
    return conf


def consumer_config(cfg: KafkaConfig, group_id: str, **overrides: Any) -> dict[str, Any]:
    """At-least-once consumer: offsets are stored by the worker only after its output is acked."""
    conf = common_config(cfg) | {
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": cfg.session_timeout_ms,
        "heartbeat.interval.ms": max(1000, cfg.session_timeout_ms // 5),
    }
    conf.update(overrides)
    return conf


def fetch_limits(queue_kbytes: int) -> dict[str, int]:
    """Consumer settings bounding librdkafka's prefetched input to about ``queue_kbytes``
    (part of a worker's memory bound)."""
    return {
        "queued.max.messages.kbytes": queue_kbytes,
        # One fetch response may overshoot the queue bound by this much.
        "fetch.max.bytes": max(queue_kbytes * 1024 // 4, 1024 * 1024),
        # After the queue was full, look again soon (the default waits a second).
        "fetch.queue.backoff.ms": 100,
    }


def aiokafka_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """The same connection settings for faust (aiokafka) apps."""
    kw: dict[str, Any] = {}
    if cfg.security_protocol != "PLAINTEXT":
        kw["security_protocol"] = cfg.security_protocol
    if "SSL" in cfg.security_protocol:  # aiokafka needs a context for SSL and SASL_SSL
        kw["ssl_context"] = ssl.create_default_context(cafile=cfg.ssl_ca_location)
    if cfg.sasl_mechanism:
        kw["sasl_mechanism"] = cfg.sasl_mechanism
        kw["sasl_plain_username"] = cfg.sasl_username
        kw["sasl_plain_password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    return kw
