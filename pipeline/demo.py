"""``camcount demo``: start the local services, run the pipeline on a sample, print what ClickHouse holds.

Foundation stage: one WindowCount record makes the whole trip (codec → Kafka → codec →
ClickHouse → analyst view) so a fresh machine proves every moving part answers.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

from pipeline.codec import WINDOW_COUNT, default_codec
from pipeline.config import REPO_ROOT, Settings
from pipeline.exceptions import CamcountError
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config, producer_config
from pipeline.sinks.clickhouse import make_client, wait_until_up
from pipeline.sinks.migrations import migrate


def progress(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _infra(action: str) -> None:
    if subprocess.call(["bash", str(REPO_ROOT / "infra" / f"{action}.sh")]) != 0:
        raise CamcountError(f"infra/{action}.sh failed")


def _round_trip(settings: Settings) -> dict:
    codec = default_codec()
    topic = topics.name(settings, topics.COUNTS)
    now_ms = int(time.time() // 60 * 60_000)
    record = dict(camera_id="demo", rule="road", class_name="person", direction="in",
                  window_start_ms=now_ms, window_end_ms=now_ms + 60_000, count=1, version=1, final=True)
    producer = Producer(producer_config(settings.kafka))
    producer.produce(topic, key=b"demo", value=codec.encode(WINDOW_COUNT, record))
    if producer.flush(30):
        raise CamcountError("Kafka did not acknowledge the demo record")
    consumer = Consumer(consumer_config(settings.kafka, f"demo-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.key() == b"demo":
                got = codec.decode_as(msg.value(), WINDOW_COUNT)
                if got == record:
                    return got
        raise CamcountError("the demo record did not come back from Kafka")
    finally:
        consumer.close()


def run_demo(settings: Settings, keep_running: bool = False) -> int:
    from pipeline.kafka.topics import create_topics

    progress("starting Kafka and ClickHouse (infra/up.sh)")
    _infra("up")
    try:
        progress("creating topics and migrating the ClickHouse schema")
        create_topics(settings)
        version = wait_until_up(settings.clickhouse)
        migrate(make_client(settings.clickhouse, database="default"), settings.clickhouse.database, version)
        progress("sending a WindowCount through Kafka")
        rec = _round_trip(settings)
        client = make_client(settings.clickhouse)
        client.execute(
            "INSERT INTO counts (camera_id, rule, class_name, direction, window_start, window_end, count, "
            "version, final) VALUES",
            [(rec["camera_id"], rec["rule"], rec["class_name"], rec["direction"], rec["window_start_ms"] // 1000,
              rec["window_end_ms"] // 1000, rec["count"], rec["version"], int(rec["final"]))],
        )
        rows = client.execute(
            "SELECT camera_id, rule, class_name, direction, window_start, count FROM counts_latest "
            "WHERE camera_id = %(camera)s ORDER BY window_start DESC LIMIT 1", {"camera": "demo"})
        print("camera_id\trule\tclass\tdirection\twindow_start\tcount")
        for row in rows:
            print("\t".join(str(v) for v in row))
        return 0
    finally:
        if not keep_running:
            progress("stopping Kafka and ClickHouse (infra/down.sh)")
            _infra("down")
