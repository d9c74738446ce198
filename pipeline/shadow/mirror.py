"""A primary worker's copy of the sampled frames to ``frames.shadow``, for shadow candidates.

``FrameMirror.copy`` produces a frame (its original bytes and headers) when it is in the
sample (``assignment.sampled``; end-of-stream markers always) through a producer of its
own with a small queue: when the queue is full the copy is dropped and counted, never
waited for, so shadow load cannot slow the primary path.
"""

from __future__ import annotations

from typing import Callable

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import producer_config
from pipeline.shadow.assignment import sampled

#: Frames the mirror producer may hold unacknowledged before copies are dropped.
MIRROR_QUEUE_MESSAGES = 200


class FrameMirror:
    """Copies sampled frames to ``frames.shadow``; ``count`` gets ``mirrored`` or ``mirror_dropped``."""

    def __init__(self, settings: Settings, count: Callable[[str], None]) -> None:
        from confluent_kafka import Producer

        self._topic = topics.name(settings, topics.FRAMES_SHADOW)
        self._count = count
        self._producer = Producer(producer_config(
            settings.kafka, **{"queue.buffering.max.messages": MIRROR_QUEUE_MESSAGES,
                               "enable.idempotence": False, "acks": 1}))

    def copy(self, rate: float, frame: dict, key: bytes | None, value: bytes, headers) -> None:
        """Copy one frame when it is in the ``rate`` sample (never blocks)."""
        if rate <= 0.0 or not (frame.get("end_of_stream", False) or sampled(frame["camera_id"], frame["seq"], rate)):
            return
        try:
            self._producer.produce(self._topic, value=value, key=key, headers=headers)
            self._count("mirrored")
        except BufferError:
            self._count("mirror_dropped")
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Wait for the copies in flight; how many were not acknowledged."""
        return self._producer.flush(timeout_s)
