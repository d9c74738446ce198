"""The alerter through the real broker: occupancy held above a threshold, a silent camera, the sink.

``camcount alerter`` runs as a subprocess; records go in with the codec; alerts are read
back from the ``alerts`` topic, and from ClickHouse ``alerts`` through the sink.
"""

from __future__ import annotations

import io
import signal
import subprocess
import threading
import time
from pathlib import Path

from pipeline.alerts.tail import tail
from pipeline.codec import ALERT, HEARTBEAT, OCCUPANCY_SAMPLE, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.sinks.clickhouse import make_client
from tests.integration.test_sink import fast, running_sink
from tests.kafka_helpers import consume, produce, start_worker, write_config

T0_MS = 1_700_000_000_000

RULES = [
    {"type": "occupancy", "name": "crowd", "camera_id": "cam-a", "zone": "lobby", "above": 2, "for_ms": 3_000},
    {"type": "silence", "name": "down", "silent_for_ms": 2_000, "severity": "critical"},
]


def _sample(ms: int, occupancy: int) -> tuple[str, str, dict]:
    return "cam-a", OCCUPANCY_SAMPLE, dict(camera_id="cam-a", stream_id="cam-a-s1", seq=ms // 500,
                                           capture_ts_ms=T0_MS + ms, rule="lobby", class_name="person",
                                           occupancy=occupancy)


def _beat(camera: str, ms: int, end_of_stream: bool = False) -> tuple[str, str, dict]:
    return camera, HEARTBEAT, dict(camera_id=camera, stream_id=f"{camera}-s1", seq=ms // 500,
                                   capture_ts_ms=T0_MS + ms, end_of_stream=end_of_stream)


def _occupancy_traffic() -> list[tuple[str, str, dict]]:
    """cam-a: 1 person for 2 s, 5 for 5 s (above 2 for more than 3 s), then 1 again; cam-b beside it."""
    msgs = []
    for ms in range(0, 10_000, 500):
        msgs += [_beat("cam-a", ms), _beat("cam-b", ms), _sample(ms, 5 if 2_000 <= ms < 7_000 else 1)]
    return msgs


class KeepAlive:
    """Heartbeats for ``camera`` every 300 ms in a thread, as a camera still sending frames would."""

    def __init__(self, settings: Settings, camera: str) -> None:
        self.settings, self.camera, self.stop = settings, camera, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ms = 10_000
        while not self.stop.wait(0.3):
            produce(self.settings, topics.name(self.settings, topics.COUNT_EVENTS), [_beat(self.camera, ms)])
            ms += 300

    def __enter__(self) -> "KeepAlive":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _alerts(settings: Settings, until, worker: subprocess.Popen, timeout_s: float = 90) -> list[dict]:
    codec = default_codec()
    decode = lambda msgs: [codec.decode_as(m.value(), ALERT) for m in msgs]  # noqa: E731
    msgs = consume(settings, topics.name(settings, topics.ALERTS), lambda m: until(decode(m)), timeout_s, (worker,))
    return decode(msgs)


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_threshold_and_silence_alerts_through_the_broker_into_clickhouse(settings: Settings, tmp_path: Path) -> None:
    settings = fast(settings)
    config = write_config(settings, tmp_path / "camcount.yaml",
                          alerts={"rules": RULES, "silence_check_interval_ms": 200, "commit_interval_ms": 500})
    produce(settings, topics.name(settings, topics.COUNT_EVENTS), _occupancy_traffic())
    worker = start_worker(config, "-v", "alerter", log=tmp_path / "alerter.log")
    try:
        with running_sink(settings), KeepAlive(settings, "cam-a"):
            # cam-b stops after the traffic: silent for 2 s -> one silence alert; cam-a keeps sending
            got = _alerts(settings, lambda a: any(x["kind"] == "silence" for x in a), worker)
            time.sleep(2)  # room for a duplicate, if there were one
            produce(settings, topics.name(settings, topics.COUNT_EVENTS), [_beat("cam-b", 20_000)])
            # cam-a and cam-b may sit on different partitions: wait for both cameras' alerts
            got = _alerts(settings, lambda a: [x["state"] for x in a if x["kind"] == "silence"]
                          == ["firing", "resolved"] and sum(x["rule"] == "crowd" for x in a) >= 2,
                          worker, timeout_s=60)
            rows = _wait_rows(settings, len(got))
    finally:
        _stop(worker)

    crowd = [(a["state"], a["ts_ms"] - T0_MS, a["value"]) for a in got if a["rule"] == "crowd"]
    assert crowd == [("firing", 5_000, 5.0), ("resolved", 7_000, 1.0)]  # above since 2 s, held 3 s; below at 7 s
    silence = [(a["state"], a["camera_id"], a["alert_id"]) for a in got if a["kind"] == "silence"]
    assert silence == [("firing", "cam-b", "down/cam-b"), ("resolved", "cam-b", "down/cam-b")]
    assert len(got) == 4, got
    assert sorted(rows) == sorted((a["alert_id"], a["state"], a["ts_ms"]) for a in got)

    out = io.StringIO()
    assert tail(settings, out) == 4
    firing = [line for line in out.getvalue().splitlines() if "FIRING" in line and "crowd" in line]
    assert len(firing) == 1 and firing[0].split()[1:5] == ["FIRING", "warning", "threshold", "cam-a"]
    assert firing[0].endswith("crowd: occupancy of lobby/person on cam-a is 5, > 2 for 3 s [crowd/cam-a/lobby/person]")


def _wait_rows(settings: Settings, n: int, timeout_s: float = 30) -> list[tuple]:
    client = make_client(settings.clickhouse)
    deadline = time.monotonic() + timeout_s
    while True:
        rows = client.execute("SELECT alert_id, state, ts_ms FROM alerts FINAL")
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def _insert_stats(settings: Settings, frames: int, errors: int, p95_ms: float) -> None:
    from pipeline.sinks.clickhouse import server_version
    from pipeline.sinks.migrations import Features

    client = make_client(settings.clickhouse)
    ts_ms = int(time.time() * 1000)
    ts = ts_ms if Features.for_version(server_version(client)).datetime64 else ts_ms // 1000
    client.execute(
        "INSERT INTO inference_stats (ts_ms, ts, worker_id, model_name, model_version, batches, frames, errors,"
        " batch_size_mean, batch_size_max, queue_wait_ms_p50, queue_wait_ms_p95, inference_ms_p50,"
        " inference_ms_p95, frames_per_s, lag_ms_max) VALUES",
        [(ts_ms, ts, "w1", "yolox-nano", "1", 1, frames, errors, 1.0, 1, 0.0, 0.0, 1.0, p95_ms, 10.0, 0.0)])


def test_inference_error_rate_from_inference_stats_fires_then_resolves(settings: Settings, tmp_path: Path) -> None:
    rules = [{"type": "inference", "name": "model-health", "max_error_rate": 0.1, "window_ms": 60_000}]
    config = write_config(settings, tmp_path / "camcount.yaml",
                          alerts={"rules": rules, "inference_poll_interval_ms": 1_000})
    worker = start_worker(config, "-v", "alerter", log=tmp_path / "alerter.log")
    try:
        _insert_stats(settings, frames=50, errors=50, p95_ms=10.0)  # half the frames failed
        got = _alerts(settings, lambda a: len(a) >= 1, worker)
        time.sleep(2)  # still above: nothing more is published
        _insert_stats(settings, frames=950, errors=0, p95_ms=10.0)  # 50 errors in 1,050 frames over the window
        got = _alerts(settings, lambda a: len(a) >= 2, worker, timeout_s=30)
    finally:
        _stop(worker)
    assert [(a["state"], a["kind"], a["alert_id"], a["value"], a["camera_id"]) for a in got] == [
        ("firing", "inference_errors", "model-health/yolox-nano:1/errors", 0.5, None),
        ("resolved", "inference_errors", "model-health/yolox-nano:1/errors", 50 / 1050, None),
    ]


def test_restart_while_firing_publishes_no_second_firing(settings: Settings, tmp_path: Path) -> None:
    """The condition state is restored from the changelog: a restarted alerter remembers what fires."""
    config = write_config(settings, tmp_path / "camcount.yaml",
                          alerts={"rules": RULES[:1], "commit_interval_ms": 200})
    events = topics.name(settings, topics.COUNT_EVENTS)
    produce(settings, events, [_sample(ms, 5) for ms in range(0, 5_000, 500)])  # above for 4.5 s: fires at 3 s
    worker = start_worker(config, "-v", "alerter", log=tmp_path / "alerter-1.log")
    try:
        assert [a["state"] for a in _alerts(settings, lambda a: len(a) >= 1, worker)] == ["firing"]
        time.sleep(1)  # past a commit
    finally:
        _stop(worker)
    produce(settings, events, [_sample(ms, 5) for ms in range(5_000, 8_000, 500)] + [_sample(8_000, 0)])
    worker = start_worker(config, "-v", "alerter", log=tmp_path / "alerter-2.log")
    try:
        got = _alerts(settings, lambda a: len(a) >= 2, worker)
        time.sleep(2)
        got = _alerts(settings, lambda a: False, worker, timeout_s=5)
    finally:
        _stop(worker)
    assert [(a["state"], a["ts_ms"] - T0_MS) for a in got] == [("firing", 3_000), ("resolved", 8_000)]
