from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.exceptions import SourceError
from pipeline.ingest.sources import av_options, file_path, file_start_ms, open_source, redact, source_kind


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("../shared/data/videos/pets09_s2l1_pedestrians.avi", "file"),  # relative path
        ("/var/video/cam1.mp4", "file"),  # absolute path
        ("file:///var/video/cam1.mp4", "file"),  # file URL
        ("rtsp://10.0.0.5:554/stream1", "rtsp"),
        ("RTSP://cam/stream", "rtsp"),  # scheme is case-insensitive
        ("rtsps://cam/stream", "rtsp"),  # RTSP over TLS
        ("http://cam/live/index.m3u8", "http"),  # HLS
        ("https://cdn.example/cam.m3u8", "http"),
        ("srt://10.0.0.9:9000", "url"),  # anything else FFmpeg reads, treated as live
        ("C:\\video\\cam.mp4", "file"),  # a Windows path is not a URL
    ],
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_file_url_path():
    assert file_path("file:///var/video/cam1.mp4") == Path("/var/video/cam1.mp4")


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1"),  # nothing to hide
        ("rtsp://viewer@cam/s", "rtsp://viewer@cam/s"),  # user only
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),  # a path is not a URL
    ],
)
def test_redact_hides_passwords(source, shown):
    assert redact(source) == shown


def test_rtsp_uses_tcp_and_socket_timeouts():
    cfg = IngestConfig(read_timeout_s=2.5)
    assert av_options("rtsp", cfg) == {"rtsp_transport": "tcp", "timeout": "2500000"}
    assert av_options("http", cfg) == {"rw_timeout": "2500000"}
    assert av_options("file", cfg) == {}


def test_file_start_is_the_mtime_floored_to_the_second(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    os.utime(clip, ns=(0, 1_700_000_123_987_654_321))
    assert file_start_ms(clip) == 1_700_000_123_000


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "nope.mp4"), IngestConfig())


def test_not_a_video_is_a_clear_error(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("these are not the frames you are looking for\n" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        open_source(str(notes), IngestConfig())


def test_refused_connection_is_a_clear_error_without_the_password():
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    with pytest.raises(SourceError) as info:
        open_source("rtsp://admin:s3cret@127.0.0.1:9/cam", IngestConfig(open_timeout_s=3, read_timeout_s=3))
    assert "s3cret" not in str(info.value) and "admin:***@127.0.0.1:9" in str(info.value)
