"""Pre-produce a benchmark's input backlog to a topic (keys and values already encoded)."""

from __future__ import annotations

from typing import Iterable

from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.kafka.clients import producer_config


def produce_all(settings: Settings, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
    """Produce every ``(key, value)`` to ``topic``, waiting out a full local queue; all acknowledged on return."""
    producer = Producer(producer_config(settings.kafka))
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # librdkafka's local queue is full: let acknowledgements drain it
                producer.poll(0.1)
    if producer.flush(60):
        raise RuntimeError(f"the backlog for {topic} was not acknowledged")
