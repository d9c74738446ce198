"""One way to build and run the faust-streaming apps (counter, aggregator, comparator, alerter).

Only stream-processor modules import this; it maps our Kafka config (incl. SASL/SSL) onto
faust's settings so every app connects and names its internal topics the same way.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import faust

from pipeline.config import KafkaConfig, Settings


def _credentials(cfg: KafkaConfig) -> faust.types.auth.CredentialsT | None:
    if cfg.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=cfg.ssl_ca_location) if "SSL" in cfg.security_protocol else None
    if cfg.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=cfg.sasl_username,
            password=cfg.sasl_password.get_secret_value() if cfg.sasl_password else None,
            mechanism=cfg.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


def make_app(settings: Settings, name: str, **overrides: Any) -> faust.App:
    """A faust app whose id (consumer group, changelog prefix) carries the topic prefix.

    ``overrides`` are faust settings a part tunes for itself (commit interval, timeouts...).
    """
    app_id = f"{settings.topics.prefix}{name}"
    datadir = Path(tempfile.gettempdir()) / "camcount-faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{b.strip()}" for b in settings.kafka.bootstrap_servers.split(",")]
    options: dict[str, Any] = dict(
        broker=brokers,
        broker_credentials=_credentials(settings.kafka),
        broker_client_id=settings.kafka.client_id,
        store="memory://",  # state is rebuilt from the changelog topic on start
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=False,
        datadir=datadir,
        producer_max_request_size=settings.topics.max_message_bytes,
    )
    return faust.App(app_id, **(options | overrides))


def raw_topic(app: faust.App, topic: str) -> faust.TopicT:
    """A topic of Avro single-object bytes: faust passes values through, our codec decodes."""
    return app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def serve(settings: Settings, part: str, app: faust.App, health_port: int | None = None,
          on_exit: Callable[[], None] = lambda: None) -> int:
    """Run a faust app as a camcount worker until SIGTERM/SIGINT; returns the exit code.

    Sets up telemetry and the health endpoint (ready while the app runs outside a
    rebalance); faust's worker handles the signals and the shutdown.
    """
    import logging

    from pipeline import telemetry

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    health = telemetry.start_worker(settings, part, lambda: app_ready(app), health_port)
    worker = faust.Worker(app, loglevel=level if isinstance(level, str) else "WARNING", quiet=True,
                          override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        on_exit()
        if health is not None:
            health.stop()
    return 0


def exit_on_error(part: str, handle: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """A faust agent calling ``handle`` per event; an unexpected error ends the process.

    The state is then unknown, so the worker exits and is restarted from the changelog
    (its input offsets were not committed past the failed event) instead of going on.
    """
    import logging
    import os

    async def agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                await handle(event)
            except Exception:  # noqa: BLE001 - unknown state: stop, restart from the changelog
                logging.getLogger(__name__).critical(
                    "%s failed on %s[%d]@%d; exiting so it restarts from the changelog", part,
                    event.message.topic, event.message.partition, event.message.offset, exc_info=True)
                logging.shutdown()
                os._exit(1)

    return agent


def app_ready(app: faust.App) -> bool:
    """Readiness of a faust worker: started, not crashed, stopping or in a rebalance."""
    return bool(app.started and not app.crashed and not app.should_stop and not app.rebalancing)


def event_headers(event: Any) -> list[tuple[str, bytes]]:
    """A faust event's headers as a list of pairs (faust hands a dict or a list)."""
    headers = event.headers if hasattr(event, "headers") else None
    if headers is None:
        headers = event.message.headers
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(k, v) for k, v in items]
