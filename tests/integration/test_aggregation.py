"""The aggregator app and the sink end to end: synthetic count events in, exact windows in ClickHouse.

Synthetic traffic with known windows goes to ``count-events``; ``camcount aggregate``
runs as a subprocess (so it can be killed like a real crash), the sink in a thread.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from pipeline.codec import COUNT_EVENT, HEARTBEAT, OCCUPANCY_SAMPLE, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.headers import header
from pipeline.sinks.clickhouse import make_client
from tests.conftest import with_overrides
from tests.integration.test_sink import fast, running_sink
from tests.kafka_helpers import consume, produce, start_worker, write_config

T0_MS = 1_700_000_040_000  # a window start (multiple of 60 s)
CAMERAS = ("cam-a", "cam-b")
SECONDS = 240  # four 60 s windows per camera

Msg = tuple[str, str, dict]  # (Kafka key, record name, value)


def _crossing(camera: str, s: int, ts_ms: int | None = None) -> Msg:
    direction, class_name = ("in" if s % 2 else "out"), ("car" if s % 3 == 0 else "person")
    return camera, COUNT_EVENT, dict(
        event_id=f"{camera}-s1/{s}/door/{direction}", camera_id=camera, stream_id=f"{camera}-s1", seq=s * 10,
        capture_ts_ms=T0_MS + s * 1000 + 300 if ts_ms is None else ts_ms, rule="door", rule_kind="line",
        class_name=class_name, direction=direction, track_id=s, dwell_ms=None, model_name="m", model_version="1")


def _heartbeat(camera: str, s: int, end_of_stream: bool = False) -> Msg:
    return camera, HEARTBEAT, dict(camera_id=camera, stream_id=f"{camera}-s1", seq=s * 10,
                                   capture_ts_ms=T0_MS + s * 1000, end_of_stream=end_of_stream)


def _sample(s: int) -> Msg:
    return "cam-a", OCCUPANCY_SAMPLE, dict(camera_id="cam-a", stream_id="cam-a-s1", seq=s * 10,
                                           capture_ts_ms=T0_MS + s * 1000 + 1, rule="lobby", class_name="person",
                                           occupancy=s % 5)


def traffic() -> tuple[list[Msg], dict[tuple, int]]:
    """Two cameras for four windows, in capture order, with re-deliveries, a late and a too-late event.

    Returns the messages and the expected final count per (camera, class, direction, window start).
    """
    msgs: list[Msg] = []
    for s in range(SECONDS):
        for camera in CAMERAS:
            msgs.append(_heartbeat(camera, s))
            if s % 7 == 3:
                msgs.append(_crossing(camera, s))
                if s % 5 == 0:
                    msgs.append(_crossing(camera, s))  # re-delivered at once
        msgs.append(_sample(s))
        if s == 70:  # stream time 70 s, watermark 40 s: a crossing at 50 s still counts in [0, 60)
            msgs.append(_crossing("cam-a", 1001, ts_ms=T0_MS + 50_000))
        if s == 100:  # watermark 70 s: [0, 60) is final, a crossing at 20 s is too late
            msgs.append(_crossing("cam-a", 1003, ts_ms=T0_MS + 20_000))
        if s == 120:
            msgs += msgs[10:40]  # at-least-once upstream: a stretch of old records again
    msgs += [_heartbeat(camera, SECONDS, end_of_stream=True) for camera in CAMERAS]

    expected: Counter[tuple] = Counter()
    for _, record, v in {(m[2].get("event_id"), m[1]): m for m in msgs}.values():
        if record == COUNT_EVENT and v["event_id"] != "cam-a-s1/1003/door/in":
            start = v["capture_ts_ms"] - (v["capture_ts_ms"] - T0_MS) % 60_000
            expected[(v["camera_id"], v["class_name"], v["direction"], start)] += 1
    return msgs, dict(expected)


def _settings(settings: Settings, tmp_path: Path) -> Settings:
    return fast(with_overrides(settings, aggregation={
        "session_timeout_ms": 6_000, "commit_interval_ms": 500, "data_dir": str(tmp_path / "faust")}))


def _final_counts(settings: Settings) -> dict[tuple, tuple[int, int]]:
    rows = make_client(settings.clickhouse).execute(
        "SELECT camera_id, class_name, direction, toUInt64(window_start) * 1000, count, final FROM counts FINAL")
    return {row[:4]: (row[4], row[5]) for row in rows}


def _wait_final(settings: Settings, expected: dict, worker: subprocess.Popen, timeout_s: float = 120) -> dict:
    want = {k: (n, 1) for k, n in expected.items()}
    deadline = time.monotonic() + timeout_s
    while True:
        got = _final_counts(settings)
        if got == want or time.monotonic() > deadline:
            return got
        assert worker.poll() is None, f"the aggregator exited with {worker.returncode}"
        time.sleep(0.5)


def _stop(worker: subprocess.Popen) -> None:
    """SIGTERM: faust stops cleanly (flushes, commits) and the command exits 0."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0


def _window_log(settings: Settings, replayed: bool = False) -> list[dict]:
    """Every WindowCount on the counts topic; checks a version never changes meaning.

    Versions never go back, except after a crash (``replayed``): input replayed from the
    last commit re-emits versions already sent, identically, and nothing else.
    """
    codec = default_codec()
    msgs = consume(settings, topics.name(settings, topics.COUNTS), lambda m: False, timeout_s=8)
    seen: dict[tuple, dict] = {}
    latest: dict[tuple, int] = {}
    values = [v for name, v in (codec.decode(m.value()) for m in msgs) if "count" in v]
    for v in values:
        wid = (v["camera_id"], v["rule"], v["class_name"], v["direction"], v["window_start_ms"])
        repeat = (wid, v["version"]) in seen
        assert seen.setdefault((wid, v["version"]), v) == v, f"{wid} version {v['version']} means two things"
        assert v["version"] >= latest.get(wid, 0) or (replayed and repeat), f"{wid}: version went back"
        latest[wid] = v["version"]
    return values


def test_end_to_end_exact_windows_in_clickhouse(settings: Settings, tmp_path: Path) -> None:
    settings = _settings(settings, tmp_path)
    msgs, expected = traffic()
    produce(settings, topics.name(settings, topics.COUNT_EVENTS), msgs)
    worker = start_worker(write_config(settings, tmp_path / "camcount.yaml"), "-v", "aggregate",
                          log=tmp_path / "aggregate.log")
    try:
        with running_sink(settings):
            assert _wait_final(settings, expected, worker) == {k: (n, 1) for k, n in expected.items()}
            occupancy = make_client(settings.clickhouse).execute(
                "SELECT toUInt64(window_start) * 1000, samples, occupancy_max, occupancy_mean, final"
                " FROM occupancy FINAL ORDER BY window_start")
    finally:
        _stop(worker)
    assert occupancy == [(T0_MS + w * 60_000, 60, 4, 2.0, 1) for w in range(4)]
    log = (tmp_path / "aggregate.log").read_text()
    assert "too late" in log and "cam-a-s1/1003/door/in" in log  # dropped, and said so
    assert "'too_late': 1" in log  # and counted
    _window_log(settings)


def test_killed_aggregator_restarts_from_its_changelog(settings: Settings, tmp_path: Path) -> None:
    settings = _settings(settings, tmp_path)
    msgs, expected = traffic()
    source = topics.name(settings, topics.COUNT_EVENTS)
    cfg = write_config(settings, tmp_path / "camcount.yaml")
    cut = len(msgs) * 55 // 100
    produce(settings, source, msgs[:cut])
    worker = start_worker(cfg, "-v", "aggregate", log=tmp_path / "aggregate-1.log")
    try:
        consume(settings, topics.name(settings, topics.COUNTS), lambda m: len(m) >= 4, timeout_s=90,
                workers=(worker,))
    finally:
        worker.kill()  # SIGKILL: no clean shutdown, no last commit
        worker.wait(30)
    produce(settings, source, msgs[cut - 60:])  # upstream re-delivers a little, then carries on
    worker = start_worker(cfg, "-v", "aggregate", log=tmp_path / "aggregate-2.log")
    try:
        with running_sink(settings):
            assert _wait_final(settings, expected, worker) == {k: (n, 1) for k, n in expected.items()}
    finally:
        _stop(worker)
    finals = [v for v in _window_log(settings, replayed=True) if v["final"]]
    assert {(v["camera_id"], v["class_name"], v["direction"], v["window_start_ms"]): v["count"]
            for v in finals} == expected


def test_undecodable_records_go_to_the_dlq(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = _settings(kafka_settings, tmp_path)
    source = topics.name(settings, topics.COUNT_EVENTS)
    from confluent_kafka import Producer

    from pipeline.kafka.clients import producer_config

    producer = Producer(producer_config(settings.kafka))
    producer.produce(source, key=b"cam-a", value=b"\xc3\x01garbage-garbage")
    assert producer.flush(10) == 0
    produce(settings, source, [("cam-x", *_crossing("cam-a", 3)[1:])])  # keyed by the wrong camera
    worker = start_worker(write_config(settings, tmp_path / "camcount.yaml"), "aggregate",
                          log=tmp_path / "aggregate.log")
    try:
        dead = consume(settings, topics.dlq(source), lambda m: len(m) >= 2, timeout_s=90, workers=(worker,))
    finally:
        _stop(worker)
    assert [header(m.headers(), "dlq.reason") for m in dead] == ["unknown_schema", "key_mismatch"]
    assert {header(m.headers(), "dlq.topic") for m in dead} == {source}
    assert header(dead[0].headers(), "dlq.consumer") == topics.name(settings, settings.aggregation.app_id)
