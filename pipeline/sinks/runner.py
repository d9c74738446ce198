"""The consumer loop that drives a ``Sink``: poll, decode, buffer, flush, then store offsets.

At-least-once, quix-streams style: a partition's offsets are stored for commit
(``enable.auto.offset.store=false``) only after a flush that covered everything consumed
from it returned, and after the DLQ messages produced meanwhile were acknowledged.
While the sink raises ``SinkBackpressureError`` every assigned partition is paused (Kafka
holds the backlog, memory stays bounded), polling goes on so the consumer keeps its
place in the group, and the same flush is retried after the backoff it asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from opentelemetry import trace

from pipeline import telemetry

from pipeline.codec import Codec
from pipeline.config import Settings
from pipeline.exceptions import DecodeError
from pipeline.kafka.clients import consumer_config, producer_config
from pipeline.kafka.headers import dlq_headers
from pipeline.kafka.topics import dlq
from pipeline.sinks.base import Sink, SinkBackpressureError, SinkRecord

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("camcount.sink")

STATS_INTERVAL_S = 30.0
#: Messages taken per ``consume`` call; a flush can overshoot ``batch_rows`` by up to this many.
POLL_BATCH = 500
#: Trace links per write span (OpenTelemetry's default span limit); later records go unlinked.
MAX_TRACE_LINKS = 128


class SinkRunner:
    """Consume ``topics`` (each with the records it may carry) into ``sink``."""

    def __init__(self, settings: Settings, sink: Sink, topics: dict[str, Iterable[str]], group_id: str,
                 codec: Codec) -> None:
        self.sink = sink
        self.topics = {t: frozenset(records) for t, records in topics.items()}
        self.codec = codec
        self.group_id = group_id
        self.batch_rows = settings.sink.batch_rows
        self.flush_interval_s = settings.sink.flush_interval_ms / 1000
        self.stats: Counter[str] = Counter()
        self._consumer = Consumer(consumer_config(settings.kafka, group_id))
        self._producer = Producer(producer_config(settings.kafka))
        self._consumed: dict[tuple[str, int], int] = {}  # next offset per partition, not yet stored
        self._paused = False
        self._retry_at = 0.0
        self._last_flush = time.monotonic()
        self._trace_links: list[trace.Link] = []  # contexts of the records buffered (bounded)
        self.running = False
        telemetry.observe("camcount.sink", "camcount.sink.records", "counter", self,
                          lambda r: [(n, {"kind": k}) for k, n in list(r.stats.items())], unit="{record}",
                          description="Records by kind, rows_written, skipped, dlq.*, flush_retries")
        telemetry.observe("camcount.sink", "camcount.sink.buffered_rows", "gauge", self,
                          lambda r: [(r.sink.buffered_rows(), {})], unit="{row}",
                          description="Rows waiting for the next write")

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set (or KeyboardInterrupt), then flush, commit and close."""
        stop = stop or threading.Event()
        self._consumer.subscribe(list(self.topics), on_revoke=self._on_revoke, on_lost=self._on_lost)
        next_stats = time.monotonic() + STATS_INTERVAL_S
        self.running = True
        try:
            while not stop.is_set():
                for msg in self._consumer.consume(POLL_BATCH, 0.1 if self._paused else 0.25):
                    self._take(msg)
                now = time.monotonic()
                if self._flush_due(now):
                    self._try_flush(now)
                if now >= next_stats:
                    log.info("sink: %s", dict(sorted(self.stats.items())))
                    next_stats = now + STATS_INTERVAL_S
        finally:
            self.running = False
            self._shutdown()

    def ready(self) -> bool:
        """Readiness: consuming, and the destination takes writes (not paused by backpressure)."""
        return self.running and not self._paused

    def _flush_due(self, now: float) -> bool:
        if self._paused:
            return now >= self._retry_at
        if self.sink.buffered_rows() >= self.batch_rows:
            return True
        return bool(self._consumed) and now - self._last_flush >= self.flush_interval_s

    def _take(self, msg: Message) -> None:
        if msg.error():
            if msg.error().fatal():
                raise KafkaException(msg.error())
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", msg.error())
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        self._consumed[(topic, partition)] = offset + 1
        try:
            record, value = self.codec.decode(msg.value(), expect=self.topics[topic])
        except DecodeError as exc:
            self._dead_letter(msg, exc)
            return
        if self.sink.accepts(record):
            self.sink.add(SinkRecord(topic, partition, offset, record, value))
            if len(self._trace_links) < MAX_TRACE_LINKS:
                self._trace_links.extend(telemetry.links([msg.headers()]))
            self.stats[record] += 1
        else:
            self.stats["skipped"] += 1

    def _dead_letter(self, msg: Message, exc: DecodeError) -> None:
        self.stats[f"dlq.{exc.reason}"] += 1
        log.warning("%s[%d]@%d to the DLQ: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        headers = dlq_headers(msg.headers(), msg.topic(), msg.partition(), msg.offset(), exc.reason, str(exc))
        headers.append(("dlq.consumer", self.group_id.encode()))
        while True:
            try:
                self._producer.produce(dlq(msg.topic()), key=msg.key(), value=msg.value(), headers=headers)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then try again
                self._producer.poll(0.5)
        self._producer.poll(0)

    def _flush(self) -> int:
        """``sink.flush()`` in a span linked to the traces of the records it writes."""
        if not self.sink.buffered_rows():
            return self.sink.flush()
        with _tracer.start_as_current_span("sink.write", links=self._trace_links,
                                           attributes={"rows": self.sink.buffered_rows()}):
            written = self.sink.flush()
        self._trace_links = []
        return written

    def _try_flush(self, now: float) -> None:
        try:
            self.stats["rows_written"] += self._flush()
        except SinkBackpressureError as exc:
            self._retry_at = now + exc.retry_after_s
            if not self._paused:
                self._paused = True
                log.warning("sink: pausing %d partitions until the destination takes writes again",
                            len(self._consumer.assignment()))
            self._consumer.pause(self._consumer.assignment())  # also ones assigned since
            self.stats["flush_retries"] += 1
            return
        self._store_offsets()
        self._last_flush = now
        if self._paused:
            self._paused = False
            self._consumer.resume(self._consumer.assignment())
            log.warning("sink: destination back, partitions resumed")

    def _store_offsets(self) -> None:
        """Everything consumed so far is written or skipped: make its offsets committable."""
        if not self._consumed:
            return
        if self._producer.flush(30) > 0:  # DLQ copies must be safe before their offsets move
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "DLQ messages not acknowledged"))
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._consumed.items() if (t, p) in assigned]
        if offsets:
            self._consumer.store_offsets(offsets=offsets)
        self._consumed.clear()

    # --- rebalances and shutdown -----------------------------------------------------------------

    def _commit(self) -> None:
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing stored since the last commit
                raise

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Write what we hold for the partitions leaving us; if we cannot, the next owner replays it."""
        if not partitions:
            return
        try:
            self.stats["rows_written"] += self._flush()
            self._store_offsets()
            self._commit()
        except (SinkBackpressureError, KafkaException) as exc:
            tps = [(tp.topic, tp.partition) for tp in partitions]
            log.warning("revoked while unable to write (%s): dropped %d buffered rows, the next owner replays them",
                        exc, self.sink.drop(tps))
            for tp in tps:
                self._consumed.pop(tp, None)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        log.warning("partitions lost: dropped %d buffered rows, the next owner replays them", self.sink.drop(tps))
        for tp in tps:
            self._consumed.pop(tp, None)

    def _shutdown(self) -> None:
        try:
            if self._consumed or self.sink.buffered_rows():
                self.stats["rows_written"] += self._flush()
                self._store_offsets()
            self._commit()
        except (SinkBackpressureError, KafkaException) as exc:
            log.warning("stopping with %d rows not written (%s); they are replayed on the next start",
                        self.sink.buffered_rows(), exc)
        finally:
            self._consumer.close()
            self._producer.flush(10)
            self.sink.close()
            log.info("sink stopped: %s", dict(sorted(self.stats.items())))
