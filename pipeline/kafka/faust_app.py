"""One way to build and run the faust-streaming apps (counter, aggregator, comparator, alerter).

Only stream-processor modules import this; it maps our Kafka config (incl. SASL/SSL) onto
faust's settings so every app connects and names its internal topics the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import tempfile
import threading
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

import faust
from mode.utils.queues import ThrowableQueue

from pipeline.config import KafkaConfig, Settings
from pipeline.kafka.commit_order import CommitOrder

log = logging.getLogger(__name__)

#: How long a stopping agent waits for the effects of records it handled to be acknowledged.
DRAIN_TIMEOUT_S = 10.0

#: How long a signalled stop may take before the process ends anyway (exit code 1). Without
#: the broker, faust waits for acknowledgements and aiokafka for its group coordinator
#: without end; ending then is as safe as ``kill -9``: what was not committed is read again.
STOP_TIMEOUT_S = 25.0

#: The changelog writes of the record the current agent task is handling (None elsewhere).
_deferred_writes: ContextVar[list[asyncio.Future] | None] = ContextVar("camcount_deferred_writes", default=None)


class DurableTable(faust.Table):
    """A faust table whose changelog writes from an agent wait for ``CommitOrder``.

    Inside a ``durable_agent`` a write is serialised at once (the value as it is now) and
    handed to the producer only after the record's results are acknowledged; elsewhere
    (a timer) it goes out at once, as in faust.
    """

    def send_changelog(self, partition: int | None, key: Any, value: Any, key_serializer: Any = None,
                       value_serializer: Any = None) -> Any:
        deferred = _deferred_writes.get()
        if deferred is None:
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        fut = self.changelog_topic.as_future_message(
            key=key, value=value, partition=partition,
            key_serializer=self.key_serializer if key_serializer is None else key_serializer,
            value_serializer=self.value_serializer if value_serializer is None else value_serializer,
            callback=self._on_changelog_sent, eager_partitioning=True)
        deferred.append(fut)
        return fut


class _RevokableQueue(ThrowableQueue):
    """An agent's input buffer that faust empties when partitions are revoked, not when flow resumes.

    faust empties every input buffer when it resumes flow at the end of a table recovery
    (``FlowControlEvent.resume``), but by then the fetcher has moved past what the buffer
    held and the agent may already be handling records of the new assignment: those
    records were never seen, and later ones were (a gap in the input, and commits that
    stop at it). On revocation (and on stop) faust suspends flow before it empties the
    buffers, so there a buffer is still emptied: its records belong to partitions this
    worker may no longer own.
    """

    def clear(self) -> None:
        if not self._flow_control.is_active():
            super().clear()


class InputTopic(faust.Topic):
    """faust's topic, buffering consumed records in a ``_RevokableQueue``."""

    @property
    def queue(self) -> ThrowableQueue:
        if self._queue is None:
            maxsize = self.app.conf.stream_buffer_maxsize if self.maxsize is None else self.maxsize
            self._queue = _RevokableQueue(maxsize=maxsize, flow_control=self.app.flow_control, clear_on_resume=True)
        return self._queue


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
        Table=DurableTable,
        Topic=InputTopic,
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


class _Worker(faust.Worker):
    """faust's worker, with a bound on how long a stop asked for by a signal may take."""

    async def _stop_on_signal(self, sig: signal.Signals) -> None:
        watchdog = threading.Timer(STOP_TIMEOUT_S, _stop_overdue, (sig,))
        watchdog.daemon = True
        watchdog.start()
        await super()._stop_on_signal(sig)


def _stop_overdue(sig: signal.Signals) -> None:
    log.error("still stopping %.0f s after %s (the broker unreachable?); exiting now, what was not "
              "committed is read again on restart", STOP_TIMEOUT_S, sig.name)
    logging.shutdown()
    os._exit(1)


def serve(settings: Settings, part: str, app: faust.App, health_port: int | None = None,
          on_exit: Callable[[], None] = lambda: None) -> int:
    """Run a faust app as a camcount worker until SIGTERM/SIGINT; returns the exit code.

    Sets up telemetry and the health endpoint (ready while the app runs outside a
    rebalance); faust's worker handles the signals and the shutdown, which ends the
    process after ``STOP_TIMEOUT_S`` if it has not finished by then.
    """
    from pipeline import telemetry

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    health = telemetry.start_worker(settings, part, lambda: app_ready(app), health_port)
    worker = _Worker(app, loglevel=level if isinstance(level, str) else "WARNING", quiet=True,
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


Handler = Callable[[Any], Awaitable[Sequence[Awaitable[Any]] | None]]


def durable_agent(part: str, handle: Handler) -> Callable[[Any], Awaitable[None]]:
    """A faust agent calling ``handle`` per event and committing it only once its effects are stored.

    ``handle`` returns the futures of the records it published (or None when it waited for
    them itself); its ``DurableTable`` writes follow them (see ``commit_order``). An
    unexpected error ends the process: the state is then unknown, and the worker restarts
    from the changelog (input offsets were not committed past the failed event).
    """

    def fatal(event: Any, exc: BaseException | None = None) -> None:
        log.critical(
            "%s failed on %s[%d]@%d; exiting so it restarts from the changelog", part,
            event.message.topic, event.message.partition, event.message.offset,
            exc_info=exc if exc is not None else True)
        logging.shutdown()
        os._exit(1)

    async def agent(stream: Any) -> None:
        order = CommitOrder(stream.app.producer.send_soon, stream.ack, fatal)
        try:
            async for event in stream.noack().events():
                writes: list[asyncio.Future] = []
                token = _deferred_writes.set(writes)
                try:
                    results = await handle(event)
                except Exception:  # noqa: BLE001 - unknown state: stop, restart from the changelog
                    fatal(event)
                finally:
                    _deferred_writes.reset(token)
                await order.submit(event, results or (), writes)
        finally:  # stopping: let what is in flight be acknowledged, so the last commit includes it
            await order.drain(DRAIN_TIMEOUT_S)

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
