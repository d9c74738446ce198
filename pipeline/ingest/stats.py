"""Per-camera counters of an ingest worker, easy to export (a flat dict of numbers)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, fields


@dataclass
class CameraStats:
    """Counters of one camera since the worker started. Updated from the camera's reader
    thread and the producer's delivery callbacks; ``snapshot()`` reads them consistently."""

    camera_id: str
    #: Frames the decoder produced.
    frames_read: int = 0
    #: Frames kept by the fps sampler, encoded and handed to the queue. Every one of them ends
    #: up sent, dropped or failed: ``frames_sampled == frames_sent + frames_dropped + frames_failed``
    #: once the worker has stopped.
    frames_sampled: int = 0
    #: Frames the broker acknowledged.
    frames_sent: int = 0
    #: Frames dropped because the queue was full and ``when_full`` is ``drop_oldest``.
    frames_dropped: int = 0
    #: Frames the broker did not acknowledge (timeout, too large, shut down before delivery).
    frames_failed: int = 0
    #: Packets or frames skipped because they could not be decoded or encoded.
    decode_errors: int = 0
    #: Sessions after the first (reopens after a disconnect, stall or error; not file loops).
    reconnects: int = 0
    #: Failed attempts to open the source.
    open_failures: int = 0
    #: Times a looping file started over.
    loops: int = 0
    #: Live clock re-anchored to wall time (camera clock jumped or drifted).
    clock_resyncs: int = 0
    bytes_sent: int = 0
    encode_ms_total: float = 0.0
    last_capture_ts_ms: int = 0
    #: ``starting``, ``streaming``, ``reconnecting``, ``ended``, ``stopped`` or ``failed``.
    state: str = "starting"
    error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def set(self, **values: object) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def snapshot(self) -> dict[str, object]:
        """All counters as plain values, plus the mean encode time."""
        with self._lock:
            out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        sampled = out["frames_sampled"]
        out["encode_ms_mean"] = round(out["encode_ms_total"] / sampled, 3) if sampled else 0.0
        out["encode_ms_total"] = round(out["encode_ms_total"], 3)
        return out


class Throttled:
    """Log a recurring warning at most once per ``interval_s``, with how many times it happened."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += f" (and {self._suppressed} more like it in the last {self._interval_s:g}s)"
        self._log.warning(msg, *args)
        self._next = now + self._interval_s
        self._suppressed = 0
