"""Helpers for the ingest integration tests: read ``frames`` back, run a real RTSP server."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from confluent_kafka import Consumer

from pipeline.codec import FRAME, default_codec
from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config
from pipeline.kafka.headers import header

REPO = Path(__file__).resolve().parents[2]
RTSP_SERVER = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
INSTALL_HINT = "install it with `bash infra/rtsp/install.sh` (the test command runs it)"


@dataclass(frozen=True)
class ReadFrame:
    """One message of ``frames``, decoded."""

    key: str
    partition: int
    traceparent: str | None
    frame: dict

    @property
    def camera_id(self) -> str:
        return self.frame["camera_id"]

    def image(self) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.frame["data"], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, f"seq {self.frame['seq']}: JPEG does not decode"
        return image


class FramesReader:
    """A consumer of this test's ``frames`` topic from the beginning, kept open across reads."""

    def __init__(self, settings: Settings) -> None:
        conf = consumer_config(settings.kafka, f"test-ingest-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
        self._consumer = Consumer(conf)
        self._consumer.subscribe([topics.name(settings, topics.FRAMES)])
        self.frames: list[ReadFrame] = []

    def read(self, until: int | None = None, idle_s: float = 3.0, timeout_s: float = 60.0) -> list[ReadFrame]:
        """Read until ``until`` frames in all and then ``idle_s`` with nothing new (so extra frames
        would show), or until ``timeout_s``. Always polls at least once."""
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while True:
            for msg in self._consumer.consume(500, timeout=0.2):
                assert msg.error() is None, msg.error()
                frame = default_codec().decode_as(msg.value(), FRAME)
                self.frames.append(ReadFrame(msg.key().decode(), msg.partition(),
                                             header(msg.headers(), "traceparent"), frame))
                last_new = time.monotonic()
            now = time.monotonic()
            if now >= deadline or ((until is None or len(self.frames) >= until) and now - last_new >= idle_s):
                return self.frames

    def of(self, camera_id: str) -> list[ReadFrame]:
        """The camera's image frames (end-of-stream markers left out: see ``markers``)."""
        return [f for f in self.frames if f.camera_id == camera_id and not f.frame["end_of_stream"]]

    def markers(self, camera_id: str) -> list[ReadFrame]:
        return [f for f in self.frames if f.camera_id == camera_id and f.frame["end_of_stream"]]

    def close(self) -> None:
        self._consumer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_gst_rtsp_server() -> None:
    """Fail (not skip) when GStreamer's RTSP server is not installed for the system python."""
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('Gst', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "assert Gst.ElementFactory.find('qtdemux') and Gst.ElementFactory.find('rtph264pay')")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.fail(f"{SYSTEM_PYTHON} not found; GStreamer's RTSP server runs under the system python; {INSTALL_HINT}")
    if done.returncode != 0:
        pytest.fail(f"GStreamer RTSP server not usable from {SYSTEM_PYTHON}: {done.stderr.strip()[-300:]}; "
                    f"{INSTALL_HINT}")


class RtspServer:
    """GStreamer's RTSP server serving one H.264 MP4 at rtsp://127.0.0.1:PORT/cam, as a process."""

    def __init__(self, clip: Path, port: int, path: str = "/cam") -> None:
        self.clip = clip
        self.port = port
        self.path = path
        self.url = f"rtsp://127.0.0.1:{port}{path}"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> "RtspServer":
        self._proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--path", self.path, str(self.clip)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._proc.stdout.readline()  # "READY rtsp://..." once it listens
        if not line.startswith("READY"):
            self.kill()
            pytest.fail(f"RTSP server did not start: {line!r} {self._proc.stderr.read()[-500:]}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"RTSP server not accepting on port {self.port}")

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing flows, as with a hung camera."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-stream, as a crashed camera or bridge would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # a stopped process dies only once resumed
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None
