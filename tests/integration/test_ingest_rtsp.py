"""Ingest from a real RTSP server (GStreamer's gst-rtsp-server) that dies mid-stream and comes back.

Needs ``bash infra/rtsp/install.sh`` (the test command runs it); without it the test fails.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from pipeline.config import Settings
from pipeline.ingest.worker import IngestWorker
from tests.conftest import with_overrides
from tests.integration.ingest_support import FramesReader, RtspServer, free_port, require_gst_rtsp_server


def wait_for(reader: FramesReader, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
        reader.read(idle_s=0, timeout_s=0.3)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def test_rtsp_camera_reconnects_with_a_new_stream_while_others_carry_on(kafka_settings: Settings,
                                                                        street_cars: Path, pets09: Path):
    require_gst_rtsp_server()
    port = free_port()
    server = RtspServer(street_cars, port).start()
    settings = with_overrides(
        kafka_settings,
        cameras=[{"id": "rtsp", "source": server.url, "fps": 5},
                 # A looping file is paced in real time: 2 frames/s the whole test long.
                 {"id": "file", "source": str(pets09), "fps": 2, "loop": True}],
        ingest={"reconnect_initial_ms": 200, "reconnect_max_ms": 1000, "open_timeout_s": 5, "read_timeout_s": 3},
    )
    worker = IngestWorker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    reader = FramesReader(settings)
    started_ms = wall_ms()
    thread.start()
    try:
        wait_for(reader, lambda: len(reader.of("rtsp")) >= 10, 30, "10 frames over RTSP")
        server.kill()
        killed_ms = wall_ms()
        file_at_kill = len(reader.of("file"))
        # The worker sees the stream end, and its reconnects are refused while the server is down.
        wait_for(reader, lambda: worker.stats["rtsp"].open_failures >= 2, 15, "refused reconnects")
        assert worker.stats["rtsp"].snapshot()["state"] == "reconnecting"
        time.sleep(max(0.0, 3.0 - (wall_ms() - killed_ms) / 1000))
        reader.read(idle_s=0, timeout_s=0.5)
        file_during_outage = len(reader.of("file")) - file_at_kill
        rtsp_at_restart = len(reader.of("rtsp"))

        server = RtspServer(street_cars, port).start()
        restarted_ms = wall_ms()
        wait_for(reader, lambda: len(reader.of("rtsp")) >= rtsp_at_restart + 10, 30, "10 frames after the restart")
    finally:
        worker.stop()
        thread.join(timeout=30)
        server.kill()
        reader.close()
    assert not thread.is_alive()

    rtsp = reader.of("rtsp")
    streams = list(dict.fromkeys(f.frame["stream_id"] for f in rtsp))
    assert len(streams) == 2  # the reopened stream is a new stream session
    first = [f for f in rtsp if f.frame["stream_id"] == streams[0]]
    second = [f for f in rtsp if f.frame["stream_id"] == streams[1]]
    assert len(first) >= 10 and len(second) >= 10 and rtsp[: len(first)] == first  # no interleaving
    assert [f.frame["seq"] for f in rtsp] == list(range(len(rtsp)))  # per-camera seq carries on
    stamps = [f.frame["capture_ts_ms"] for f in rtsp]
    assert stamps == sorted(stamps) and started_ms <= stamps[0] and stamps[-1] <= wall_ms()
    assert first[-1].frame["capture_ts_ms"] <= killed_ms < restarted_ms <= second[0].frame["capture_ts_ms"]
    assert all(f.image().shape == (352, 640, 3) for f in rtsp)

    stats = worker.snapshot()
    assert stats["rtsp"]["reconnects"] >= 1 and stats["rtsp"]["open_failures"] >= 2
    assert stats["rtsp"]["frames_sent"] == len(rtsp) and stats["rtsp"]["frames_failed"] == 0
    # The file camera did not notice: it kept sending while the RTSP camera was down.
    assert file_during_outage >= 4
    assert stats["file"]["reconnects"] == 0 and stats["file"]["frames_failed"] == 0
    assert [f.frame["seq"] for f in reader.of("file")] == list(range(len(reader.of("file"))))


def test_a_stalled_rtsp_camera_is_reconnected(kafka_settings: Settings, street_cars: Path,
                                              caplog: pytest.LogCaptureFixture):
    require_gst_rtsp_server()
    server = RtspServer(street_cars, free_port()).start()
    settings = with_overrides(
        kafka_settings,
        cameras=[{"id": "rtsp", "source": server.url, "fps": 5}],
        ingest={"reconnect_initial_ms": 200, "reconnect_max_ms": 1000, "open_timeout_s": 2, "read_timeout_s": 2},
    )
    worker = IngestWorker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    reader = FramesReader(settings)
    thread.start()
    try:
        wait_for(reader, lambda: len(reader.of("rtsp")) >= 5, 30, "5 frames over RTSP")
        server.pause()  # the connection stays up, but no packet comes: a hung camera
        paused_at = time.monotonic()
        wait_for(reader, lambda: worker.stats["rtsp"].reconnects >= 1, 10, "the stall to be noticed")
        noticed_after_s = time.monotonic() - paused_at
        server.resume()
        wait_for(reader, lambda: len({f.frame["stream_id"] for f in reader.of("rtsp")}) == 2
                 and len(reader.of("rtsp")) >= 15, 30, "frames on a new stream")
    finally:
        worker.stop()
        thread.join(timeout=30)
        server.kill()
        reader.close()
    assert 1.5 <= noticed_after_s <= 6  # read_timeout_s = 2
    assert any("camera rtsp: stalled (no data for 2s)" in r.getMessage() for r in caplog.records)
    rtsp = reader.of("rtsp")
    assert [f.frame["seq"] for f in rtsp] == list(range(len(rtsp)))
