"""librdkafka settings built from config, so every worker connects (and secures) the same way."""

from __future__ import annotations

from typing import Any

from pipeline.config import KafkaConfig


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
    }
    conf.update(overrides)
    return conf


def aiokafka_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """The same connection settings for faust (aiokafka) apps."""
    kw: dict[str, Any] = {}
    if cfg.security_protocol != "PLAINTEXT":
        kw["security_protocol"] = cfg.security_protocol
    if cfg.sasl_mechanism:
        kw["sasl_mechanism"] = cfg.sasl_mechanism
        kw["sasl_plain_username"] = cfg.sasl_username
        kw["sasl_plain_password"] = cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
    return kw
