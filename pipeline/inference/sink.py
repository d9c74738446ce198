"""Where the worker's frames end: Detections to ``detections``, bad frames to ``frames.dlq``.

``KafkaFrameSink`` is the ``stages.FrameSink`` of the pipeline. Every message it produces
carries the token of its input frame; the broker's ack finishes that frame (its offset may
then be committed). A delivery that fails for good is recorded as ``failure`` and the
worker stops without storing the offset, so the frame is replayed after a restart.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pipeline import telemetry
from pipeline.codec import DETECTIONS, Codec
from pipeline.exceptions import DecodeError
from pipeline.inference.frames import FrameItem, Headers, trace_headers
from pipeline.inference.offsets import Token
from pipeline.inference.stats import StatsReporter
from pipeline.kafka.headers import dlq_headers


class KafkaFrameSink:
    """Produces detections (keyed by camera) and dead letters; acks finish input frames."""

    def __init__(self, producer: Producer, codec: Codec, output_topic: str, dlq_topic: str,
                 on_finished: Callable[[Token], None], stats: StatsReporter,
                 log: logging.LoggerAdapter | logging.Logger) -> None:
        self._producer = producer
        self._codec = codec
        self._output_topic = output_topic
        self._dlq_topic = dlq_topic
        self._on_finished = on_finished
        self._stats = stats
        self._log = log
        self.failure: BaseException | None = None

    def emit(self, item: FrameItem, record: dict) -> None:
        value = self._codec.encode(DETECTIONS, record)
        key = record["camera_id"].encode()
        # The current span's context (the frame's "infer" span), else the frame's own, passed on.
        headers = telemetry.inject(trace_headers(item.headers)) or None
        self._produce(self._output_topic, key, value, headers, item.token)

    def dead_letter(self, item: FrameItem, error: DecodeError) -> None:
        self.dead_letter_message(item.value, item.key, item.headers, item.token, error)

    def dead_letter_message(self, value: bytes | None, key: bytes | None, headers: Headers, token: Token,
                            error: DecodeError) -> None:
        """The message as polled, plus ``dlq.*`` headers saying where it came from and why."""
        self._log.warning("frame %s[%d]@%d to the dead-letter topic (%s): %s",
                          token.topic, token.partition, token.offset, error.reason, error)
        self._stats.count("dlq")
        dlq = dlq_headers(headers, token.topic, token.partition, token.offset, error.reason, str(error))
        self._produce(self._dlq_topic, key, value, dlq, token)

    def poll(self) -> None:
        """Serve delivery callbacks (the output stage calls this between batches)."""
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Wait for every ack; returns how many messages are still unacknowledged."""
        return self._producer.flush(timeout_s)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers,
                 token: Token) -> None:
        on_delivery = functools.partial(self._delivered, token)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers,
                                       on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: serve acks, then retry
                self._producer.poll(0.1)

    def _delivered(self, token: Token, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            self._log.error("delivery to %s failed: %s; stopping without storing offset %d",
                            msg.topic(), error, token.offset)
            self.failure = self.failure or KafkaException(error)
            return
        self._on_finished(token)
