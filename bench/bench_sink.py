"""ClickHouse sink insert throughput against a bare clickhouse-driver insert of the same rows.

Three ways to get the same ``WindowCount`` rows into ``counts``, in one run, each into a
fresh database of its own on the configured server (dropped afterwards):

- bare: ``client.execute(INSERT ..., rows)`` on tuples built in advance, ``--batch-rows``
  per insert (the ceiling);
- sink: ``ClickHouseSink.add`` of decoded records, ``flush`` every ``--batch-rows`` (the
  sink's own buffering and row building, no Kafka);
- sink + Kafka: the ``camcount sink`` consumer loop reading the Avro-encoded records
  from a topic of its own (produced beforehand, not timed) until all rows are written
  and their offsets stored: decode, buffer, insert, offsets.

Each figure is the best of ``--repeats`` passes (Kafka: one pass), which damps noise from
a shared host. Needs the local Kafka and ClickHouse (``bash infra/up.sh``).

    .venv/bin/python bench/bench_sink.py --rows 200000 --batch-rows 10000
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Callable

from confluent_kafka import Producer

from pipeline.codec import WINDOW_COUNT, default_codec
from pipeline.config import Settings, load_config
from pipeline.kafka.clients import producer_config
from pipeline.kafka.topics import COUNTS, create_topics, name
from pipeline.sinks.base import SinkRecord
from pipeline.sinks.clickhouse import make_client, wait_until_up
from pipeline.sinks.clickhouse_writer import Backoff, ClickHouseSink, clickhouse_sink_runner
from pipeline.sinks.migrations import Features, migrate
from pipeline.sinks.rows import table_specs


def records(n: int) -> list[dict]:
    """``n`` distinct WindowCount values: 50 cameras x 4 directions x windows."""
    out = []
    for i in range(n):
        camera, rest = divmod(i, n // 50 + 1)
        out.append(dict(camera_id=f"cam-{camera:03d}", rule="door", class_name=("person", "car")[i % 2],
                        direction=("in", "out", "enter", "exit")[i % 4], window_start_ms=1_700_000_040_000 + rest * 60_000,
                        window_end_ms=1_700_000_100_000 + rest * 60_000, count=i % 97, version=1 + i % 3,
                        final=bool(i % 2)))
    return out


def with_database(settings: Settings, database: str) -> Settings:
    raw = settings.model_dump()
    raw["clickhouse"] = {**raw["clickhouse"], "database": database, "password": settings.clickhouse.password}
    raw["kafka"]["sasl_password"] = settings.kafka.sasl_password
    return Settings.model_validate(raw)


class Databases:
    """Fresh migrated databases, one per pass, dropped at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.version = wait_until_up(settings.clickhouse)
        self.admin = make_client(settings.clickhouse, database="default")
        self.created: list[str] = []

    def fresh(self) -> Settings:
        database = f"bench_sink_{uuid.uuid4().hex[:8]}"
        migrate(self.admin, database, self.version)
        self.created.append(database)
        return with_database(self.settings, database)

    def drop(self) -> None:
        for database in self.created:
            self.admin.execute(f"DROP DATABASE IF EXISTS {database}")


def best_rate(run_pass: Callable[[], float], repeats: int) -> float:
    """Rows per second of the fastest pass; ``run_pass`` returns its own elapsed seconds."""
    return max(run_pass() for _ in range(repeats))


def bare_pass(dbs: Databases, values: list[dict], batch_rows: int) -> float:
    settings = dbs.fresh()
    spec = table_specs(Features.for_version(dbs.version))[WINDOW_COUNT]
    rows = [spec.to_row(v) for v in values]  # built in advance: not timed
    client = make_client(settings.clickhouse)
    sql = spec.insert_sql(settings.clickhouse.database)
    client.execute("SELECT 1")
    start = time.perf_counter()
    for i in range(0, len(rows), batch_rows):
        client.execute(sql, rows[i:i + batch_rows])
    return len(rows) / (time.perf_counter() - start)


def sink_pass(dbs: Databases, values: list[dict], batch_rows: int) -> float:
    settings = dbs.fresh()
    sink = ClickHouseSink(settings.clickhouse, Backoff(0.5, 30))
    sink.add(SinkRecord("bench", 0, 0, WINDOW_COUNT, values[0]))
    sink.flush()  # connect and learn the server version outside the timing
    start = time.perf_counter()
    for offset, value in enumerate(values):
        sink.add(SinkRecord("bench", offset % 4, offset, WINDOW_COUNT, value))
        if sink.buffered_rows() >= batch_rows:
            sink.flush()
    sink.flush()
    return len(values) / (time.perf_counter() - start)


def kafka_pass(dbs: Databases, values: list[dict], batch_rows: int) -> tuple[float, float]:
    settings = dbs.fresh()
    raw = settings.model_dump()
    raw["topics"]["prefix"] = f"bench{uuid.uuid4().hex[:8]}."
    raw["sink"] = {**raw["sink"], "batch_rows": batch_rows, "flush_interval_ms": 1000}
    raw["clickhouse"]["password"] = settings.clickhouse.password
    raw["kafka"]["sasl_password"] = settings.kafka.sasl_password
    settings = Settings.model_validate(raw)
    create_topics(settings)
    codec = default_codec()
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 50}))
    topic = name(settings, COUNTS)
    for value in values:
        while True:
            try:
                producer.produce(topic, key=value["camera_id"].encode(), value=codec.encode(WINDOW_COUNT, value))
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
    runner = clickhouse_sink_runner(settings)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    start = time.perf_counter()
    thread.start()
    first: tuple[float, int] | None = None  # when the first batch was written, and its rows
    while runner.stats["rows_written"] < len(values) and thread.is_alive():
        if first is None and runner.stats["rows_written"]:
            first = (time.perf_counter(), runner.stats["rows_written"])
        time.sleep(0.005)
    end = time.perf_counter()
    stop.set()
    thread.join(60)
    if runner.stats["rows_written"] < len(values) or first is None:
        raise RuntimeError(f"the sink wrote {runner.stats['rows_written']} of {len(values)} rows")
    with_join = len(values) / (end - start)  # includes the consumer joining its group
    steady = (len(values) - first[1]) / (end - first[0])  # from the first insert to the last
    return with_join, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", help="camcount YAML config (default: built-in defaults + env)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true", help="skip the pass through Kafka")
    args = parser.parse_args()
    settings = load_config(args.config)
    values = records(args.rows)
    dbs = Databases(settings)
    try:
        bare = best_rate(lambda: bare_pass(dbs, values, args.batch_rows), args.repeats)
        sink = best_rate(lambda: sink_pass(dbs, values, args.batch_rows), args.repeats)
        kafka = None if args.no_kafka else kafka_pass(dbs, values, args.batch_rows)
    finally:
        dbs.drop()
    server = ".".join(map(str, dbs.version))
    print(f"ClickHouse {server}, {args.rows} WindowCount rows, {args.batch_rows} rows per insert, "
          f"best of {args.repeats}")
    print(f"bare clickhouse-driver insert : {bare:12,.0f} rows/s")
    print(f"ClickHouseSink add+flush      : {sink:12,.0f} rows/s   ratio to bare {sink / bare:.2f}")
    if kafka is not None:
        with_join, steady = kafka
        print(f"camcount sink from Kafka      : {steady:12,.0f} rows/s   ratio to bare {steady / bare:.2f}"
              "  (one pass, first insert to last)")
        print(f"  same, counting the group join: {with_join:11,.0f} rows/s   ratio to bare {with_join / bare:.2f}")


if __name__ == "__main__":
    main()
