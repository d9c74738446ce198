"""The Kafka side of an ingest worker: an idempotent producer tuned for JPEG frames."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline.config import Settings
from pipeline.ingest.base import OutgoingFrame
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.exceptions import ProducerFatalError
from pipeline.ingest.stats import CameraStats, Throttled
from pipeline.kafka import topics
from pipeline.kafka.clients import producer_config

log = logging.getLogger(__name__)


class _LibrdkafkaLog(logging.LoggerAdapter):
    """librdkafka's own log lines, at debug level: they repeat every connection attempt, and
    ``error_cb`` already reports what matters (throttled) at warning level."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        self.logger.log(logging.DEBUG, msg, *args, **kwargs)


def frame_producer_config(settings: Settings, cfg: IngestConfig) -> dict[str, Any]:
    """Idempotent producer (acks=all, ordered retries) with a bounded send buffer.

    JPEG is already compressed, so ``compression`` defaults to none; batching by
    ``linger_ms``/``batch_bytes`` still saves requests. The buffer bounds are what turns a
    slow broker into backpressure on the readers instead of growing memory.
    """
    return producer_config(
        settings.kafka,
        **{
            "compression.type": cfg.compression,
            "linger.ms": cfg.linger_ms,
            "batch.size": cfg.batch_bytes,
            "queue.buffering.max.kbytes": cfg.producer_buffer_kbytes,
            "queue.buffering.max.messages": cfg.producer_buffer_messages,
            "message.max.bytes": settings.topics.max_message_bytes,
            "delivery.timeout.ms": cfg.delivery_timeout_ms,
        },
    )


class FramePublisher:
    """Produces ``OutgoingFrame``s to ``frames`` and counts acknowledgements per camera."""

    def __init__(self, settings: Settings, cfg: IngestConfig, stats: Mapping[str, CameraStats]) -> None:
        self.topic = topics.name(settings, topics.FRAMES)
        self._stats = stats
        self._warn = Throttled(log)
        self._fatal: KafkaError | None = None
        conf = frame_producer_config(settings, cfg) | {
            "error_cb": self._on_error,
            "logger": _LibrdkafkaLog(logging.getLogger(f"{__name__}.librdkafka"), {}),
        }
        self._producer = Producer(conf)

    def publish(self, item: OutgoingFrame, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Produce one frame, waiting (serving callbacks) while librdkafka's buffer is full.

        Returns False if ``give_up()`` turned true while waiting (the frame is not sent) or
        the frame was refused outright (e.g. larger than ``max_message_bytes``; counted).
        """
        while True:
            self.raise_if_fatal()
            try:
                self._producer.produce(self.topic, key=item.key, value=item.value, headers=list(item.headers),
                                       on_delivery=self._delivery_callback(item.camera_id))
                break
            except BufferError:  # the send buffer is full: the broker is slow or away
                self._producer.poll(0.1)
                if give_up():
                    return False
            except KafkaException as exc:
                self._stats[item.camera_id].add(frames_failed=1)
                log.error("camera %s: frame seq %d refused by the producer: %s", item.camera_id, item.seq, exc)
                return False
        self._producer.poll(0)
        return True

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks."""
        self._producer.poll(timeout_s)
        self.raise_if_fatal()

    def flush(self, timeout_s: float) -> int:
        """Wait for acknowledgements of everything produced; frames still unacknowledged after
        ``timeout_s`` are purged and counted as failed. Returns how many that was."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("%d frames were not acknowledged within %.1fs; purging them", remaining, timeout_s)
            self._producer.purge()
            self._producer.flush(1.0)  # serves the purged frames' delivery callbacks (counted as failed)
        return remaining

    def close(self, timeout_s: float) -> int:
        """``flush(timeout_s)``, then release the producer (its threads and connections)."""
        remaining = self.flush(timeout_s)
        self._producer.close()
        return remaining

    def raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise ProducerFatalError(f"Kafka producer fatal error: {self._fatal.str()}")

    def _delivery_callback(self, camera_id: str) -> Callable[[KafkaError | None, Message], None]:
        stats = self._stats[camera_id]

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                stats.add(frames_sent=1, bytes_sent=len(msg.value() or b""))
            else:
                stats.add(frames_failed=1)
                self._warn.warning("camera %s: frame not delivered: %s", camera_id, err.str())

        return on_delivery

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            log.error("Kafka producer fatal error: %s", err.str())
        else:
            self._warn.warning("Kafka producer: %s", err.str())
