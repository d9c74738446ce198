"""The ClickHouse sink through the real broker and server: exact rows, replaced versions, DLQ, offsets."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from pipeline.codec import COUNT_EVENT, HEARTBEAT, WINDOW_COUNT, WINDOW_OCCUPANCY
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config, producer_config
from pipeline.kafka.headers import header
from pipeline.sinks.clickhouse import make_client
from pipeline.sinks.clickhouse_writer import clickhouse_sink_runner
from pipeline.sinks.runner import SinkRunner
from tests.conftest import with_overrides
from tests.kafka_helpers import consume, produce, start_worker, write_config

T0_MS = 1_700_000_040_000  # a window start (multiple of 60 s)


def window_count(camera: str, start_ms: int, count: int, version: int, final: bool, direction: str = "in",
                 rule: str = "door") -> tuple[str, str, dict]:
    return camera, WINDOW_COUNT, dict(camera_id=camera, rule=rule, class_name="person", direction=direction,
                                      window_start_ms=start_ms, window_end_ms=start_ms + 60_000, count=count,
                                      version=version, final=final)


def window_occupancy(camera: str, start_ms: int, version: int) -> tuple[str, str, dict]:
    return camera, WINDOW_OCCUPANCY, dict(camera_id=camera, rule="lobby", class_name="person",
                                          window_start_ms=start_ms, window_end_ms=start_ms + 60_000, samples=600,
                                          occupancy_max=4, occupancy_mean=1.25, version=version, final=True)


def count_event(camera: str, i: int, ts_ms: int) -> tuple[str, str, dict]:
    return camera, COUNT_EVENT, dict(
        event_id=f"s1/{i}/door/in", camera_id=camera, stream_id="s1", seq=i, capture_ts_ms=ts_ms, rule="door",
        rule_kind="line", class_name="person", direction="in", track_id=i, dwell_ms=None if i % 2 else 1500,
        model_name="yolox-nano", model_version="1")


@contextmanager
def running_sink(settings: Settings) -> Iterator[SinkRunner]:
    """The sink consumer loop in a thread, stopped (flush, commit, close) on exit."""
    stop = threading.Event()
    runner = clickhouse_sink_runner(settings)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runner.run(stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            errors.append(exc)

    thread = threading.Thread(target=target, name="sink", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert not thread.is_alive()


def wait_for(query: Callable[[], Any], expected: Any, timeout_s: float = 60.0) -> Any:
    """Poll ``query()`` until it returns ``expected`` (then return it) or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = query()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def counts_final(settings: Settings) -> Callable[[], list[tuple]]:
    client = make_client(settings.clickhouse)
    return lambda: client.execute(
        "SELECT camera_id, direction, toUInt64(window_start) * 1000, count, version, final"
        " FROM counts FINAL ORDER BY camera_id, direction, window_start")


def fast(settings: Settings) -> Settings:
    return with_overrides(settings, sink={"batch_rows": 50, "flush_interval_ms": 200, "backoff_initial_ms": 100,
                                          "backoff_max_ms": 1000})


def test_rows_versions_events_and_offsets(settings: Settings) -> None:
    settings = fast(settings)
    counts_topic = topics.name(settings, topics.COUNTS)
    events_topic = topics.name(settings, topics.COUNT_EVENTS)
    produce(settings, counts_topic, [
        window_count("cam-a", T0_MS, 3, 1, False),
        window_count("cam-a", T0_MS, 5, 2, False),  # a late event re-emitted the window
        window_count("cam-a", T0_MS, 5, 3, True),  # final
        window_count("cam-a", T0_MS, 5, 3, True),  # replayed after a crash: replaces, never adds
        window_count("cam-b", T0_MS + 60_000, 7, 1, True, direction="out"),
        window_occupancy("cam-a", T0_MS, 1),
    ])
    produce(settings, events_topic, [count_event("cam-a", i, T0_MS + i * 1000) for i in range(10)]
            + [("cam-a", HEARTBEAT, dict(camera_id="cam-a", stream_id="s1", seq=99, capture_ts_ms=T0_MS))]
            + [count_event("cam-a", 3, T0_MS + 3000)])  # a re-delivered event
    expected = [("cam-a", "in", T0_MS, 5, 3, 1), ("cam-b", "out", T0_MS + 60_000, 7, 1, 1)]
    client = make_client(settings.clickhouse)
    with running_sink(settings):
        assert wait_for(counts_final(settings), expected) == expected
        assert wait_for(lambda: client.execute("SELECT count() FROM count_events FINAL"), [(10,)]) == [(10,)]
    assert client.execute("SELECT samples, occupancy_max, occupancy_mean, version FROM occupancy FINAL") == [
        (600, 4, 1.25, 1)]
    assert client.execute(
        "SELECT event_id, seq, capture_ts_ms, toUInt64(capture_time), dwell_ms FROM count_events FINAL"
        " WHERE seq IN (2, 3) ORDER BY seq") == [
        ("s1/2/door/in", 2, T0_MS + 2000, (T0_MS + 2000) // 1000, 1500),
        ("s1/3/door/in", 3, T0_MS + 3000, (T0_MS + 3000) // 1000, None)]
    assert client.execute("SELECT * FROM counts_latest WHERE camera_id = 'cam-a'")[0][6:] == (5, 3, 1)

    # Offsets were committed after the inserts: the group is at the end of both topics.
    group = topics.name(settings, settings.sink.group_id)
    consumer = Consumer(consumer_config(settings.kafka, group))
    try:
        committed = consumer.committed([TopicPartition(t, p) for t in (counts_topic, events_topic) for p in (0, 1)],
                                       timeout=10)
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            assert tp.offset == high or (high == 0 and tp.offset < 0), tp  # an empty partition has no offset
    finally:
        consumer.close()


def test_undecodable_messages_go_to_the_dlq_and_the_rest_is_written(settings: Settings) -> None:
    settings = fast(settings)
    counts_topic = topics.name(settings, topics.COUNTS)
    producer = Producer(producer_config(settings.kafka))
    producer.produce(counts_topic, key=b"cam-a", value=b"not avro at all", headers=[("traceparent", b"00-ab")])
    assert producer.flush(10) == 0
    produce(settings, counts_topic, [window_count("cam-a", T0_MS, 2, 1, True)])
    with running_sink(settings):
        assert wait_for(counts_final(settings), [("cam-a", "in", T0_MS, 2, 1, 1)]) == [("cam-a", "in", T0_MS, 2, 1, 1)]
        dead = consume(settings, topics.dlq(counts_topic), lambda m: len(m) >= 1, timeout_s=30)
    assert [m.value() for m in dead] == [b"not avro at all"]
    headers = dead[0].headers()
    assert header(headers, "dlq.reason") == "corrupt"
    assert header(headers, "dlq.topic") == counts_topic
    assert header(headers, "traceparent") == "00-ab"
    assert header(headers, "dlq.consumer") == topics.name(settings, settings.sink.group_id)


def test_a_restarted_sink_does_not_lose_or_double_count(settings: Settings) -> None:
    settings = fast(settings)
    counts_topic = topics.name(settings, topics.COUNTS)
    produce(settings, counts_topic, [window_count("cam-a", T0_MS + i * 60_000, i, 1, True) for i in range(20)])
    with running_sink(settings):
        wait_for(lambda: len(counts_final(settings)()), 20)
    produce(settings, counts_topic, [window_count("cam-a", T0_MS + i * 60_000, i + 100, 2, True)
                                     for i in range(10, 30)])
    with running_sink(settings):
        rows = wait_for(lambda: [r[3] for r in counts_final(settings)()],
                        list(range(10)) + list(range(110, 130)))
    assert rows == list(range(10)) + list(range(110, 130))


def test_sink_command_writes_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    settings = fast(settings)
    produce(settings, topics.name(settings, topics.COUNTS), [window_count("cam-a", T0_MS, 9, 1, True)])
    worker = start_worker(write_config(settings, tmp_path / "camcount.yaml"), "-v", "sink", log=tmp_path / "sink.log")
    try:
        assert wait_for(counts_final(settings), [("cam-a", "in", T0_MS, 9, 1, 1)]) == [("cam-a", "in", T0_MS, 9, 1, 1)]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, (tmp_path / "sink.log").read_text()
    assert "sink stopped" in (tmp_path / "sink.log").read_text()


def test_query_counts_command_prints_the_latest_versions(ch_settings: Settings, tmp_path: Path) -> None:
    client = make_client(ch_settings.clickhouse)
    sql = ("INSERT INTO counts (camera_id, rule, class_name, direction, window_start, window_end, count, version,"
           " final) VALUES")
    start_s = T0_MS // 1000
    client.execute(sql, [("cam-a", "door", "person", "in", start_s, start_s + 60, 3, 1, 0),
                         ("cam-a", "door", "person", "in", start_s, start_s + 60, 4, 2, 1),  # replaces v1
                         ("cam-a", "door", "person", "in", start_s + 60, start_s + 120, 2, 1, 1),
                         ("cam-b", "door", "person", "in", start_s, start_s + 60, 50, 1, 1)])  # other camera
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "-c", str(write_config(ch_settings, tmp_path / "c.yaml")),
         "query", "counts", "--camera", "cam-a", "--since", "2023-11-14T22:00:00", "--until", "2023-11-14T23:00"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["window_start", "rule", "class_name", "direction", "count", "version", "final"]
    assert [line.split()[-3:] for line in lines[2:4]] == [["4", "2", "1"], ["2", "1", "1"]]
    assert lines[2].startswith("2023-11-14 22:14:00")
    assert lines[-1].startswith("(2 windows, 6 counted")


def test_two_sinks_share_the_partitions_without_loss(settings: Settings) -> None:
    settings = fast(settings)
    counts_topic = topics.name(settings, topics.COUNTS)
    cameras = [f"cam-{i}" for i in range(8)]  # spread over both partitions
    produce(settings, counts_topic, [window_count(c, T0_MS, 1, 1, False) for c in cameras])
    with running_sink(settings):
        wait_for(lambda: len(counts_final(settings)()), len(cameras))
        with running_sink(settings):  # joins the group: a rebalance moves a partition over
            produce(settings, counts_topic, [window_count(c, T0_MS, 2, 2, True) for c in cameras])
            expected = sorted((c, "in", T0_MS, 2, 2, 1) for c in cameras)
            assert wait_for(counts_final(settings), expected) == expected
