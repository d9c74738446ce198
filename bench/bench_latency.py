"""End-to-end latency: capture time → count event on Kafka → row visible in ClickHouse.

The sample clips are ingested at their own rate (``file_pacing: realtime``, capture times
from the wall clock at start), through inference, counter, aggregator and sink running as
separate processes (``pipeline.launcher``). Every CountEvent is timed twice: when it
arrives on ``count-events`` and when its row first answers a query of ``count_events``
in ClickHouse (polled every 100 ms, which adds up to 100 ms). Prints p50/p95/max of each.

    .venv/bin/python bench/bench_latency.py            # both sample clips, ~80 s
    .venv/bin/python bench/bench_latency.py --clip street
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer

from pipeline.codec import COUNT_EVENT, default_codec
from pipeline.config import load_config
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config
from pipeline.kafka.topics import create_topics
from pipeline.launcher import LocalPipeline
from pipeline.sinks.clickhouse import make_client
from pipeline.sinks.migrations import migrate
from pipeline.sinks.clickhouse import wait_until_up

CLIPS = {"pets09": "pets09", "street": "street"}


def _watch_kafka(settings, seen: dict[str, float], capture: dict[str, int], stop: threading.Event) -> None:
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topics.name(settings, topics.COUNT_EVENTS)])
    codec = default_codec()
    while not stop.is_set():
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            continue
        name, value = codec.decode(msg.value())
        if name == COUNT_EVENT and value["event_id"] not in seen:
            seen[value["event_id"]] = time.time() * 1000
            capture[value["event_id"]] = value["capture_ts_ms"]
    consumer.close()


def _watch_clickhouse(settings, cameras: list[str], seen: dict[str, float], stop: threading.Event) -> None:
    client = make_client(settings.clickhouse)
    while not stop.is_set():
        for (event_id,) in client.execute("SELECT event_id FROM count_events WHERE camera_id IN %(c)s",
                                          {"c": tuple(cameras)}):
            seen.setdefault(event_id, time.time() * 1000)
        time.sleep(0.1)


def _summary(label: str, latencies_ms: list[float]) -> str:
    if not latencies_ms:
        return f"{label:<28} no events"
    a = np.array(latencies_ms)
    return (f"{label:<28} n={len(a):3d}  p50={np.percentile(a, 50):7.0f} ms  p95={np.percentile(a, 95):7.0f} ms"
            f"  max={a.max():7.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/example.yaml")
    parser.add_argument("--clip", choices=sorted(CLIPS), action="append", help="default: both")
    args = parser.parse_args()
    base = load_config(args.config)
    raw = base.model_dump(mode="python")
    wanted = args.clip or sorted(CLIPS)
    raw["cameras"] = [c for c in raw["cameras"] if c["id"] in wanted]
    raw["topics"]["prefix"] = f"bench-latency-{uuid.uuid4().hex[:6]}."
    raw["clickhouse"]["database"] = f"bench_latency_{uuid.uuid4().hex[:6]}"
    raw["ingest"]["file_pacing"] = "realtime"
    settings = type(base).model_validate(raw)
    cameras = [c.id for c in settings.cameras]

    create_topics(settings)
    migrate(make_client(settings.clickhouse, database="default"), settings.clickhouse.database,
            wait_until_up(settings.clickhouse))
    on_kafka: dict[str, float] = {}
    on_clickhouse: dict[str, float] = {}
    capture: dict[str, int] = {}
    stop = threading.Event()
    watchers = [threading.Thread(target=_watch_kafka, args=(settings, on_kafka, capture, stop)),
                threading.Thread(target=_watch_clickhouse, args=(settings, cameras, on_clickhouse, stop))]
    pipeline = LocalPipeline(settings, Path(tempfile.mkdtemp(prefix="bench-latency-")), print)
    try:
        pipeline.start_workers()
        for w in watchers:
            w.start()
        time.sleep(5)  # workers join their groups before the first frame
        pipeline.ingest(int(time.time() * 1000), timeout_s=600)
        pipeline.wait_drained(timeout_s=300)
        time.sleep(2)
    finally:
        stop.set()
        for w in watchers:
            w.join()
        pipeline.stop()
        make_client(settings.clickhouse, database="default").execute(
            f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    print(f"\ncameras: {', '.join(cameras)} (realtime pacing); sink batch: {settings.sink.batch_rows} rows / "
          f"{settings.sink.flush_interval_ms} ms")
    print(_summary("capture -> count event", [on_kafka[e] - capture[e] for e in on_kafka]))
    print(_summary("capture -> ClickHouse row", [on_clickhouse[e] - capture[e] for e in on_clickhouse
                                                  if e in capture]))


if __name__ == "__main__":
    main()
