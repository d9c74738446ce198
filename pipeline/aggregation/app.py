"""The aggregator as a faust-streaming app: ``count-events`` -> window state -> ``counts``.

The only module of the package that imports faust. It decodes each record with our
codec (undecodable ones go to ``count-events.dlq`` with reason headers), hands it to
the pure ``WindowAggregator`` whose state lives in a plain faust ``Table`` (memory store,
changelog topic; not a windowed table: those expire by wall clock) and publishes the
``WindowCount`` / ``WindowOccupancy`` results keyed by camera. ``durable_agent`` puts
the state on the changelog only after the broker acknowledged the results, and commits
the record after that (see ``pipeline.kafka.commit_order`` for why that order).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import Any, Awaitable, Mapping

import faust
from confluent_kafka.admin import AdminClient
from opentelemetry import trace

from pipeline import telemetry
from pipeline.aggregation.aggregator import INPUT_RECORDS, WindowAggregator, WindowSpec
from pipeline.codec import Codec, default_codec
from pipeline.config import Settings
from pipeline.exceptions import ConfigError, DecodeError, ServiceUnavailableError
from pipeline.kafka.clients import common_config
from pipeline.kafka.faust_app import durable_agent, event_headers, make_app
from pipeline.kafka.headers import dlq_headers
from pipeline.kafka.topics import COUNT_EVENTS, COUNTS, dlq, name

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("camcount.aggregation")

TABLE_NAME = "windows"
STATS_INTERVAL_S = 30.0
PRODUCER_LINGER_MS = 10


def app_id(settings: Settings) -> str:
    return name(settings, settings.aggregation.app_id)


def source_partitions(settings: Settings, timeout_s: float = 10.0) -> int:
    """Partitions of ``count-events``: the table's changelog must have as many."""
    topic = name(settings, COUNT_EVENTS)
    try:
        meta = AdminClient(common_config(settings.kafka)).list_topics(topic, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - librdkafka raises KafkaException on timeouts
        raise ServiceUnavailableError(f"Kafka at {settings.kafka.bootstrap_servers}: {exc}") from None
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ConfigError(f"topic {topic!r} does not exist: run `camcount topics create` first")
    return len(found.partitions)


class Aggregator:
    """The faust app and its one agent; ``run()`` blocks until the worker stops."""

    def __init__(self, settings: Settings, codec: Codec | None = None) -> None:
        cfg = settings.aggregation
        self.settings = settings
        self.codec = codec or default_codec()
        self.spec = WindowSpec(cfg.window_ms, cfg.allowed_lateness_ms)
        self.stats: Counter[str] = Counter()
        telemetry.observe("camcount.aggregation", "camcount.aggregation.records", "counter", self,
                          lambda a: [(n, {"outcome": k}) for k, n in list(a.stats.items())], unit="{record}",
                          description="Count events by outcome (counted, too_late, dlq.*, emitted, ...)")
        self._quiet_until, self._suppressed = 0.0, 0
        partitions = source_partitions(settings)
        self.app = make_app(
            settings, cfg.app_id,
            broker_commit_interval=cfg.commit_interval_ms / 1000,
            broker_session_timeout=cfg.session_timeout_ms / 1000,
            broker_heartbeat_interval=cfg.session_timeout_ms / 1000 / 5,
            broker_rebalance_timeout=cfg.session_timeout_ms / 1000,
            producer_acks=-1,
            # Batch the changelog writes (two per record) instead of one request each; results
            # wait for their acks, so this adds at most this much to their latency.
            producer_linger_ms=PRODUCER_LINGER_MS,
            datadir=str(cfg.data_dir),
            topic_partitions=partitions,
            topic_disable_leader=True,
            table_standby_replicas=0,
            autodiscover=False,
        )
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.source = self.app.topic(name(settings, COUNT_EVENTS), **raw)
        self.counts = self.app.topic(name(settings, COUNTS), **raw)
        self.dead_letters = self.app.topic(name(settings, dlq(COUNT_EVENTS)), **raw)
        self.table = self.app.Table(TABLE_NAME, default=None, partitions=partitions,
                                    schema=faust.Schema(key_serializer="json", value_serializer="json"),
                                    help="Open event-time windows per key, and stream time per partition.")
        self.app.agent(self.source, name="aggregate")(durable_agent("aggregator", self.handle))
        self.app.timer(STATS_INTERVAL_S)(self._log_stats)

    async def handle(self, event: Any) -> list[Awaitable[Any]]:
        """One record of ``count-events``: decode, aggregate, publish; returns what was published."""
        msg = event.message
        try:
            record, value = self.codec.decode(event.value, expect=INPUT_RECORDS)
            if event.key != value["camera_id"].encode():
                raise DecodeError(f"key {event.key!r} is not the camera_id {value['camera_id']!r}",
                                  reason="key_mismatch")
        except DecodeError as exc:
            self.stats[f"dlq.{exc.reason}"] += 1
            log.warning("%s[%d]@%d to the DLQ: %s", msg.topic, msg.partition, msg.offset, exc)
            original = msg.headers.items() if isinstance(msg.headers, Mapping) else msg.headers or ()
            headers = dlq_headers(list(original), msg.topic, msg.partition, msg.offset, exc.reason, str(exc))
            headers.append(("dlq.consumer", self.app.conf.id.encode()))
            return [await self.dead_letters.send(key=event.key, value=event.value, headers=headers)]
        aggregator = WindowAggregator(self.spec, self.table)
        result = aggregator.apply(msg.partition, record, value)
        self.stats[result.outcome] += 1
        if result.outcome == "too_late":
            self._warn_too_late(result.late_by_ms, value)
        # "aggregate" continues the count event's trace; the counts it emits carry its context.
        with _tracer.start_as_current_span("aggregate", context=telemetry.extract(event_headers(event)),
                                           attributes={"camera_id": value["camera_id"], "outcome": result.outcome,
                                                       "emissions": len(result.emissions)}):
            headers = telemetry.inject()
            published = [
                await self.counts.send(key=e.key.encode(), value=self.codec.encode(e.record, e.value),
                                       headers=headers)
                for e in result.emissions
            ]
        self.stats["emitted"] += len(published)
        self.stats["emitted_final"] += sum(1 for e in result.emissions if e.value["final"])
        for key, state in aggregator.take_writes().items():
            if state is None:
                self.table.pop(key, None)
            else:
                self.table[key] = state
        return published

    def _warn_too_late(self, late_by_ms: int | None, value: dict) -> None:
        """Say so for each dropped event, but at most once per 10 s (a replay can drop thousands)."""
        now = time.monotonic()
        if now < self._quiet_until:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more since the last message)" if self._suppressed else ""
        log.warning("too late (%d ms behind the stream time, window final), not counted%s: %s",
                    late_by_ms, more, value)
        self._quiet_until, self._suppressed = now + 10.0, 0

    async def _log_stats(self) -> None:
        if self.stats:
            log.info("aggregator: %s", dict(sorted(self.stats.items())))


def main(settings: Settings, health_port: int | None = None) -> int:
    """Entry point of ``camcount aggregate``."""
    from pipeline.kafka.faust_app import serve

    aggregator = Aggregator(settings)
    return serve(settings, "aggregate", aggregator.app, health_port,
                 lambda: log.info("aggregator stopped: %s", dict(sorted(aggregator.stats.items()))))


if __name__ == "__main__":  # pragma: no cover - handy for debugging: python -m pipeline.aggregation.app
    from pipeline.config import load_config

    sys.exit(main(load_config(sys.argv[1] if len(sys.argv) > 1 else None)))
