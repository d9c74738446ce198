"""librdkafka settings built from the config (pure)."""

from __future__ import annotations

from pipeline.config import KafkaConfig
from pipeline.kafka.clients import consumer_config, fetch_limits


def test_consumers_store_offsets_themselves_and_leave_a_dead_member_soon() -> None:
    conf = consumer_config(KafkaConfig(session_timeout_ms=12_000), "g", **{"enable.auto.commit": False})
    assert conf["group.id"] == "g" and conf["enable.auto.offset.store"] is False
    assert conf["enable.auto.commit"] is False  # overrides win
    assert (conf["session.timeout.ms"], conf["heartbeat.interval.ms"]) == (12_000, 2_400)


def test_fetch_limits_bound_the_prefetch_queue() -> None:
    limits = fetch_limits(16_384)
    assert limits["queued.max.messages.kbytes"] == 16_384
    assert limits["fetch.max.bytes"] == 4 * 1024 * 1024
    assert fetch_limits(1024)["fetch.max.bytes"] == 1024 * 1024  # never below one MiB
