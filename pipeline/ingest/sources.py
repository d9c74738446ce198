"""Opening camera sources with PyAV: RTSP (over TCP), HTTP/HLS and other URLs, local files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import av
from av.container import InputContainer

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.exceptions import SourceError

SourceKind = Literal["file", "rtsp", "http", "url"]


def source_kind(source: str) -> SourceKind:
    """``file`` for a path or ``file://`` URL; ``rtsp``/``http`` by scheme; ``url`` for any other
    scheme FFmpeg understands (udp, srt, rtmp...). Everything but ``file`` is live."""
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in ("", "file"):
        return "file"
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if scheme in ("http", "https"):
        return "http"
    return "url"


def file_path(source: str) -> Path:
    """The local path of a file source (relative paths are relative to the working directory)."""
    return Path(urlsplit(source).path if source.startswith("file://") else source)


def file_start_ms(path: Path) -> int:
    """Default capture time of a file's first frame: its mtime, floored to the second.

    The same file gives the same value on every run (and after ``cp -p``, ``rsync -t`` or
    extraction from an archive, which keep second-precision mtimes). Events land at a
    plausible date, unlike a fixed epoch which ClickHouse's TTL would drop at once.
    """
    try:
        return int(os.stat(path).st_mtime) * 1000
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None


def av_options(kind: SourceKind, cfg: IngestConfig) -> dict[str, str]:
    """FFmpeg options for ``av.open``: TCP for RTSP, socket timeouts for network sources."""
    read_timeout_us = str(int(cfg.read_timeout_s * 1_000_000))
    if kind == "rtsp":
        # TCP: no UDP loss, works through NAT and firewalls; ``timeout`` is the socket I/O timeout.
        return {"rtsp_transport": "tcp", "timeout": read_timeout_us}
    if kind in ("http", "url"):
        return {"rw_timeout": read_timeout_us}
    return {}


def open_source(source: str, cfg: IngestConfig) -> InputContainer:
    """Open ``source`` for reading; raises ``SourceError`` with the reason when it cannot.

    PyAV's own ``timeout`` (open, read) interrupts a blocked open or read of any protocol,
    so a stalled camera surfaces as an error the reader reconnects on.
    """
    kind = source_kind(source)
    target = str(file_path(source)) if kind == "file" else source
    if kind == "file" and not Path(target).is_file():
        raise SourceError(f"{target}: no such file")
    try:
        container = av.open(target, mode="r", options=av_options(kind, cfg),
                            timeout=(cfg.open_timeout_s, cfg.read_timeout_s))
    except av.error.ExitError:  # PyAV's open timeout interrupted it
        raise SourceError(f"{redact(source)}: cannot open: no answer within {cfg.open_timeout_s:g}s") from None
    except (av.FFmpegError, OSError) as exc:
        reason = str(exc).replace(source, redact(source))
        raise SourceError(f"{redact(source)}: cannot open: {reason}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"{redact(source)}: no video stream")
    return container


def redact(source: str) -> str:
    """The source without a password, for logs (``rtsp://user:secret@cam`` -> ``rtsp://user:***@cam``)."""
    parts = urlsplit(source) if "://" in source else None
    if parts is None or parts.password is None:
        return source
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
