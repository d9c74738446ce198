"""Produce and consume through the codec on the real broker, with headers, keys and the DLQ."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from pipeline.codec import FRAME, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import common_config, consumer_config, producer_config
from pipeline.kafka.headers import dlq_headers, header


def consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(consumer_config(settings.kafka, f"test-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    out = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
    finally:
        consumer.close()
    return out


def test_frames_round_trip_with_headers(kafka_settings: Settings) -> None:
    codec = default_codec()
    topic = topics.name(kafka_settings, topics.FRAMES)
    producer = Producer(producer_config(kafka_settings.kafka))
    acked = []
    for seq in range(20):
        value = dict(camera_id=f"cam-{seq % 3}", stream_id="s", seq=seq, capture_ts_ms=1_000 + seq,
                     width=4, height=4, data=bytes([seq]) * 10)
        producer.produce(topic, key=value["camera_id"], value=codec.encode(FRAME, value),
                         headers=[("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")],
                         on_delivery=lambda err, msg: acked.append(err))
    assert producer.flush(30) == 0
    assert acked == [None] * 20

    msgs = consume_all(kafka_settings, topic, 20)
    assert len(msgs) == 20
    by_camera: dict[str, list[int]] = {}
    partitions: dict[str, set[int]] = {}
    for msg in msgs:
        frame = codec.decode_as(msg.value(), FRAME)
        assert msg.key().decode() == frame["camera_id"]
        assert header(msg.headers(), "traceparent").startswith("00-aaaa")
        by_camera.setdefault(frame["camera_id"], []).append(frame["seq"])
        partitions.setdefault(frame["camera_id"], set()).add(msg.partition())
    # Keyed by camera: one partition per camera, in order.
    assert all(len(p) == 1 for p in partitions.values())
    assert all(seqs == sorted(seqs) for seqs in by_camera.values())


def test_dlq_keeps_the_message_and_says_why(kafka_settings: Settings) -> None:
    topic = topics.name(kafka_settings, topics.dlq(topics.FRAMES))
    producer = Producer(producer_config(kafka_settings.kafka))
    producer.produce(topic, key=b"cam", value=b"garbage",
                     headers=dlq_headers([("traceparent", b"x")], "frames", 1, 42, "corrupt", "bad body"))
    producer.flush(10)
    (msg,) = consume_all(kafka_settings, topic, 1)
    assert msg.value() == b"garbage"
    assert header(msg.headers(), "dlq.reason") == "corrupt"
    assert header(msg.headers(), "dlq.offset") == "42"
    assert header(msg.headers(), "traceparent") == "x"


def test_topics_create_is_idempotent_and_configured(kafka_settings: Settings) -> None:
    again = topics.create_topics(kafka_settings)
    assert set(again.values()) == {"exists"}
    admin = AdminClient(common_config(kafka_settings.kafka))
    meta = admin.list_topics(timeout=10).topics
    prefix = kafka_settings.topics.prefix
    for name in ("frames", "frames.dlq", "detections.shadow", "count-events", "counts", "alerts",
                 "model-control"):
        assert prefix + name in meta, name
    assert len(meta[prefix + "frames"].partitions) == kafka_settings.topics.partitions
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, prefix + "model-control")
    conf = admin.describe_configs([res])[res].result()
    assert conf["cleanup.policy"].value == "compact"
    res = ConfigResource(ConfigResource.Type.TOPIC, prefix + "frames")
    conf = admin.describe_configs([res])[res].result()
    assert conf["max.message.bytes"].value == str(kafka_settings.topics.max_message_bytes)
