"""``camcount alerts tail``: print ``Alert`` records from the ``alerts`` topic, one readable line each."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, TextIO

from confluent_kafka import Consumer, KafkaError

from pipeline.codec import ALERT, Codec, default_codec
from pipeline.config import Settings
from pipeline.exceptions import DecodeError
from pipeline.kafka.clients import consumer_config
from pipeline.kafka.topics import ALERTS, name


def format_alert(value: Mapping[str, Any]) -> str:
    """``2024-05-01T12:00:03.000Z FIRING   critical silence cam-a  down: ... [alert_id]``."""
    ts = datetime.fromtimestamp(value["ts_ms"] / 1000, tz=timezone.utc)
    when = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value['ts_ms'] % 1000:03d}Z"
    return (f"{when} {value['state'].upper():<8} {value['severity']:<8} {value['kind']:<18} "
            f"{value['camera_id'] or '-':<12} {value['message']} [{value['alert_id']}]")


def tail(settings: Settings, out: TextIO, follow: bool = False, from_beginning: bool = True,
         codec: Codec | None = None, stop: Callable[[], bool] = lambda: False, idle_s: float = 2.0) -> int:
    """Print alerts; without ``follow``, stop once the end of every partition was reached.

    Reads with a throwaway consumer group and commits nothing. Returns the number printed.
    """
    codec = codec or default_codec()
    consumer = Consumer(consumer_config(
        settings.kafka, f"camcount-tail-{uuid.uuid4().hex[:8]}", **{
            "enable.auto.commit": False, "enable.partition.eof": True,
            "auto.offset.reset": "earliest" if from_beginning else "latest"}))
    consumer.subscribe([name(settings, ALERTS)])
    printed, at_end, assigned = 0, set(), None
    last_msg_s = time.monotonic()
    try:
        while not stop():
            msg = consumer.poll(0.5)
            if assigned is None and consumer.assignment():
                assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            if msg is None:
                if not follow and assigned == set() and time.monotonic() - last_msg_s > idle_s:
                    break  # a topic with no partitions assigned to us
                continue
            last_msg_s = time.monotonic()
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"alerts topic: {msg.error()}")
                at_end.add((msg.topic(), msg.partition()))
                if not follow and assigned and at_end >= assigned:
                    break
                continue
            at_end.discard((msg.topic(), msg.partition()))
            try:
                line = format_alert(codec.decode_as(msg.value(), ALERT))
            except DecodeError as exc:
                line = f"(undecodable record at {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc})"
            print(line, file=out, flush=True)
            printed += 1
    finally:
        consumer.close()
    return printed
