"""Ingest against the real broker with the real clips: counts, order, times, JPEGs, faults, CLI."""

from __future__ import annotations

import http.server
import json
import random
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import av
import pytest
import yaml

from opentelemetry import trace

from pipeline import telemetry
from pipeline.config import Settings, TelemetryConfig
from pipeline.ingest.worker import IngestWorker
from tests.conftest import with_overrides
from tests.integration.ingest_support import REPO, FramesReader, free_port

START_MS = 1_700_000_000_000


def cameras(settings: Settings, *cams: dict, **ingest: object) -> Settings:
    return with_overrides(settings, cameras=list(cams), ingest=ingest)


def write_config(settings: Settings, path: Path) -> Path:
    raw = {
        "kafka": {"bootstrap_servers": settings.kafka.bootstrap_servers},
        "topics": {"prefix": settings.topics.prefix, "partitions": settings.topics.partitions},
        "ingest": settings.ingest.model_dump(mode="json", exclude_defaults=True),
        "cameras": [c.model_dump(mode="json", exclude_defaults=True) for c in settings.cameras],
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def camcount(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)


def summary(stdout: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {row["camera_id"]: row for row in rows}


def test_sample_clips_into_frames(kafka_settings: Settings, pets09: Path, street_cars: Path):
    settings = cameras(kafka_settings,
                       {"id": "pets09", "source": str(pets09), "fps": 5},
                       {"id": "street", "source": str(street_cars), "fps": 12, "max_width": 320})
    telemetry.setup(TelemetryConfig(), "test")  # as the CLI does: frames get an "ingest.frame" root span
    stats = IngestWorker(settings, start_ms=START_MS).run()
    reader = FramesReader(settings)
    try:
        reader.read(until=398 + 453 + 2)
    finally:
        reader.close()

    # pets09: 795 frames at 10 fps = 79.5 s; at 5 fps that is 398 frames, exactly 200 ms apart.
    pets = reader.of("pets09")
    assert len(pets) == 398 == stats["pets09"]["frames_sent"] - 1  # + the end-of-stream marker
    assert [f.frame["seq"] for f in pets] == list(range(398))
    # The end of the file is announced after its last frame, on the same stream.
    (end,) = reader.markers("pets09")
    assert end.frame["seq"] == 398 and end.frame["data"] == b""
    assert end.frame["stream_id"] == pets[-1].frame["stream_id"]
    assert end.frame["capture_ts_ms"] > pets[-1].frame["capture_ts_ms"]
    assert [f.frame["capture_ts_ms"] for f in pets] == [START_MS + 200 * i for i in range(398)]
    # street: 37.65 s from first to last frame at 24.04 fps; at 12 fps 453 frames, one stream.
    street = reader.of("street")
    assert len(street) == 453 == stats["street"]["frames_sent"] - 1
    assert [f.frame["seq"] for f in street] == list(range(453))
    stamps = [f.frame["capture_ts_ms"] for f in street]
    assert stamps[0] == START_MS and stamps[-1] <= START_MS + 37_688
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(steps) >= 41 and max(steps) <= 125 and abs(sum(steps) / len(steps) - 1000 / 12) < 1

    for camera_id, frames, size in (("pets09", pets, (768, 576)), ("street", street, (320, 176))):
        assert {f.key for f in frames} == {camera_id}
        assert len({f.partition for f in frames}) == 1  # keyed by camera: one partition, in order
        assert len({f.frame["stream_id"] for f in frames}) == 1
        assert {(f.frame["width"], f.frame["height"]) for f in frames} == {size}
        assert all(f.image().shape == (size[1], size[0], 3) for f in frames)  # every JPEG decodes
        contexts = [trace.get_current_span(telemetry.extract([("traceparent", (f.traceparent or "").encode())]))
                    .get_span_context() for f in frames]
        assert all(c.is_valid for c in contexts)  # each frame is the root span of a trace
        assert len({f.traceparent for f in frames}) == len(frames)
        snap = stats[camera_id]
        assert (snap["state"], snap["frames_failed"], snap["frames_dropped"], snap["decode_errors"]) == (
            "ended", 0, 0, 0)


def test_cli_replay_gives_the_same_times_and_seqs(kafka_settings: Settings, street_cars: Path, tmp_path: Path):
    settings = cameras(kafka_settings, {"id": "street", "source": str(street_cars), "fps": 6},
                       {"id": "unused", "source": str(street_cars), "fps": 1})
    config = write_config(settings, tmp_path / "camcount.yaml")
    args = ("ingest", "--config", str(config), "--camera", "street", "--max-frames", "40", "--start-ms", str(START_MS))
    runs = [camcount(*args), camcount(*args)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert set(summary(run.stdout)) == {"street"}  # --camera: only that one
        assert summary(run.stdout)["street"]["frames_sent"] == 40

    reader = FramesReader(settings)
    try:
        frames = reader.read(until=80)
    finally:
        reader.close()
    by_stream: dict[str, list[tuple[int, int]]] = {}
    for f in frames:
        by_stream.setdefault(f.frame["stream_id"], []).append((f.frame["seq"], f.frame["capture_ts_ms"]))
    first, second = by_stream.values()  # two runs, two stream ids
    assert first == second
    assert [seq for seq, _ in first] == list(range(40)) and first[0][1] == START_MS


def test_sigterm_flushes_frames_in_flight(kafka_settings: Settings, pets09: Path, tmp_path: Path):
    # A looping file is paced in real time (10 frames/s here) and never ends by itself;
    # a 1.5 s linger keeps frames waiting in the producer when the signal comes.
    settings = cameras(kafka_settings, {"id": "demo", "source": str(pets09), "fps": 10, "loop": True},
                       linger_ms=1500)
    config = write_config(settings, tmp_path / "camcount.yaml")
    reader = FramesReader(settings)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "ingest", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert len(reader.read(until=20, idle_s=0, timeout_s=60)) >= 20  # streaming for 2 s at least
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        snap = summary(stdout)["demo"]
        assert snap["state"] == "stopped" and snap["frames_failed"] == 0 and snap["frames_dropped"] == 0
        assert snap["frames_sent"] == snap["frames_sampled"]
        frames = reader.read(until=snap["frames_sent"])
    finally:
        reader.close()
        if proc.poll() is None:
            proc.kill()
    assert [f.frame["seq"] for f in frames] == list(range(snap["frames_sent"]))  # all of them, nothing after


def corrupt_copies(pets09: Path, street_cars: Path, folder: Path) -> dict[str, Path]:
    """A truncated MP4 (its index is at the end), an MP4 with garbage over 40 spots, a truncated AVI."""
    street = street_cars.read_bytes()
    truncated_mp4 = folder / "truncated.mp4"
    truncated_mp4.write_bytes(street[: len(street) // 2])
    damaged = bytearray(street)
    rng = random.Random(2)
    for _ in range(40):
        at = rng.randrange(len(damaged) // 10, len(damaged) * 8 // 10)
        damaged[at:at + 1024] = rng.randbytes(1024)
    corrupt_mp4 = folder / "corrupt.mp4"
    corrupt_mp4.write_bytes(bytes(damaged))
    truncated_avi = folder / "truncated.avi"
    pets = pets09.read_bytes()
    truncated_avi.write_bytes(pets[: len(pets) * 6 // 10])
    return {"truncated_mp4": truncated_mp4, "corrupt_mp4": corrupt_mp4, "truncated_avi": truncated_avi}


def test_truncated_and_corrupt_files_warn_or_fail_clearly(kafka_settings: Settings, pets09: Path,
                                                          street_cars: Path, tmp_path: Path):
    bad = corrupt_copies(pets09, street_cars, tmp_path)
    settings = cameras(kafka_settings, *[{"id": name, "source": str(path), "fps": 5} for name, path in bad.items()],
                       {"id": "good", "source": str(pets09), "fps": 5})
    run = camcount("ingest", "--config", str(write_config(settings, tmp_path / "camcount.yaml")),
                   "--start-ms", str(START_MS))
    assert run.returncode == 1, run.stderr  # one camera failed: the exit status says so
    stats = summary(run.stdout)
    # No index: the file cannot be opened. A clear error naming the file, nothing sent.
    assert stats["truncated_mp4"]["state"] == "failed" and stats["truncated_mp4"]["frames_sent"] == 0
    assert "truncated.mp4: cannot open" in stats["truncated_mp4"]["error"]
    assert "camera truncated_mp4:" in run.stderr and "truncated.mp4: cannot open" in run.stderr
    # Garbage in the H.264 stream: the undecodable packets are skipped, counted and logged.
    corrupt = stats["corrupt_mp4"]
    assert corrupt["state"] == "ended" and corrupt["decode_errors"] >= 5
    assert corrupt["frames_sent"] == corrupt["frames_sampled"] >= 150
    assert "camera corrupt_mp4: skipped an undecodable packet" in run.stderr
    # Cut short: it ends early, with what was there.
    assert stats["truncated_avi"]["state"] == "ended" and 200 <= stats["truncated_avi"]["frames_sent"] < 398
    # The healthy camera beside them is untouched.
    assert stats["good"]["state"] == "ended" and stats["good"]["frames_sent"] == 398 + 1  # + end marker

    reader = FramesReader(settings)
    try:
        reader.read(until=sum(s["frames_sent"] for s in stats.values()))
    finally:
        reader.close()
    for name in ("corrupt_mp4", "truncated_avi", "good"):
        frames = reader.of(name)
        assert len(frames) == stats[name]["frames_sent"] - 1  # the end-of-stream marker is not an image
        assert len(reader.markers(name)) == 1
        assert [f.frame["seq"] for f in frames] == list(range(len(frames)))
        assert all(f.image() is not None for f in frames)


@pytest.mark.parametrize("when_full", ["block", "drop_oldest"])
def test_backpressure_when_the_broker_is_unreachable(base_settings: Settings, pets09: Path, when_full: str):
    # Nothing listens on this port: the producer's bounded buffer (5 frames) fills, then the
    # camera's queue (4 frames). Blocking readers stop reading; dropping ones read on and count.
    settings = with_overrides(base_settings, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
                              cameras=[{"id": "cam", "source": str(pets09), "fps": 10}],
                              ingest={"producer_buffer_messages": 5, "queue_frames": 4, "when_full": when_full,
                                      "stop_timeout_s": 1, "flush_timeout_s": 1, "file_pacing": "none"})
    worker = IngestWorker(settings, start_ms=START_MS)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(worker.run()), daemon=True)
    thread.start()
    # Blocking: give the reader time to fill what it can. Dropping: it reads the whole file.
    deadline = time.monotonic() + (3 if when_full == "block" else 60)
    while time.monotonic() < deadline and worker.stats["cam"].state != "ended":
        time.sleep(0.1)
    during = worker.stats["cam"].snapshot()
    worker.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    final = result["cam"]
    assert final["frames_sent"] == 0
    assert final["frames_sampled"] == final["frames_failed"] + final["frames_dropped"]  # all accounted for
    if when_full == "block":
        assert during["frames_sampled"] <= 5 + 4 + 1  # held back: buffer + queue + the one in hand
        assert final["frames_dropped"] == 0 and final["state"] == "stopped"
    else:
        assert during["frames_sampled"] == 795 + 1 and during["state"] == "ended"  # whole file + end marker
        assert final["frames_dropped"] == 795 + 1 - final["frames_failed"] >= 780


def make_hls(clip: Path, folder: Path) -> Path:
    """Remux the clip's H.264 into an HLS playlist of 2 s MPEG-TS segments (PyAV, no re-encode)."""
    playlist = folder / "cam.m3u8"
    with av.open(str(clip)) as src, av.open(str(playlist), "w", format="hls",
                                            options={"hls_time": "2", "hls_list_size": "0"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            dst.mux(packet)
    return playlist


def test_hls_over_http_is_a_live_source(kafka_settings: Settings, street_cars: Path, tmp_path: Path):
    make_hls(street_cars, tmp_path)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cam.m3u8"
        settings = cameras(kafka_settings, {"id": "hls", "source": url, "fps": 4})
        before_ms = time.time_ns() // 1_000_000
        stats = IngestWorker(settings, max_frames=20).run()
        after_ms = time.time_ns() // 1_000_000
    finally:
        server.shutdown()
    assert stats["hls"]["frames_sent"] == 20 and stats["hls"]["state"] == "ended"
    reader = FramesReader(settings)
    try:
        frames = reader.read(until=20)
    finally:
        reader.close()
    assert [f.frame["seq"] for f in frames] == list(range(20))
    stamps = [f.frame["capture_ts_ms"] for f in frames]
    assert before_ms <= stamps[0] and stamps[-1] <= after_ms  # live: wall-clock capture times
    assert stamps == sorted(stamps)
    assert {(f.frame["width"], f.frame["height"]) for f in frames} == {(640, 352)}
    assert all(f.image().shape == (352, 640, 3) for f in frames)
