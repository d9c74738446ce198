"""Test helpers shared by integration tests: config files for worker subprocesses, consuming topics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer

from pipeline.codec import default_codec
from pipeline.config import Settings
from pipeline.kafka.clients import consumer_config, producer_config


def write_config(settings: Settings, path: Path, **overrides: Any) -> Path:
    """Write ``settings`` (plus top-level overrides) as a YAML file a worker subprocess can load."""
    raw = settings.model_dump(mode="json", exclude_none=True)
    raw["kafka"].pop("sasl_password", None)
    raw["clickhouse"]["password"] = settings.clickhouse.password.get_secret_value()
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start_worker(config: Path, *args: str, log: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``camcount -c CONFIG ARGS`` as a subprocess (stdout+stderr to ``log``).

    ``env`` adds variables to this process's environment (e.g. ``CAMCOUNT_KAFKA_SASL_PASSWORD``,
    which ``write_config`` leaves out of the file).
    """
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "-c", str(config), *args],
                            stdout=out, stderr=subprocess.STDOUT, env=os.environ | env if env else None)


def produce(settings: Settings, topic: str, records: list[tuple[str, str, dict]]) -> None:
    """Produce ``(key, record name, value)`` tuples through the codec and wait for the acks."""
    codec = default_codec()
    producer = Producer(producer_config(settings.kafka))
    for key, record, value in records:
        producer.produce(topic, key=key.encode(), value=codec.encode(record, value))
        producer.poll(0)
    assert producer.flush(30) == 0


def consume(settings: Settings, topic: str, until: Any, timeout_s: float = 60.0,
            workers: tuple[subprocess.Popen, ...] = ()) -> list:
    """Consume ``topic`` from the start until ``until(messages)`` is true or the timeout passes.

    Fails at once if one of ``workers`` (the processes expected to produce) has exited.
    """
    consumer = Consumer(consumer_config(settings.kafka, f"test-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    out: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(out):
            dead = [w for w in workers if w.poll() is not None]
            assert not dead, f"worker {dead[0].args} exited with {dead[0].returncode}"
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                out.append(msg)
    finally:
        consumer.close()
    return out
