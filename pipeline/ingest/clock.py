"""Capture time of a frame in epoch ms, from its presentation time (no I/O).

Files replay deterministically: ``start_ms + media time``, so a file ingested twice with
the same start gives the same ``capture_ts_ms`` (and the same windows downstream).
Live sources use the wall clock at their first frame plus media time, which keeps the
spacing the camera gave its frames instead of the network's jitter.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CaptureClock(Protocol):
    def capture_ts_ms(self, t_s: float) -> int:
        """Epoch ms of the frame presented at ``t_s`` seconds of media time."""


class FileClock:
    """``start_ms`` + media time; never goes backwards."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self._last_ms = start_ms

    def capture_ts_ms(self, t_s: float) -> int:
        self._last_ms = max(self._last_ms, self.start_ms + round(t_s * 1000))
        return self._last_ms


class LiveClock:
    """Wall time at the first frame + media time since then, re-anchored when they drift.

    When media time and the wall clock disagree by more than ``max_skew_ms`` (the
    camera's clock jumped or drifts, or frames were held back long by backpressure) the
    clock re-anchors to wall time and counts a resync. A time is never in the future
    and never before the previous one.
    """

    def __init__(self, max_skew_ms: int, now_ms: Callable[[], int] = wall_ms) -> None:
        self.max_skew_ms = max_skew_ms
        self._now_ms = now_ms
        self._anchor_ms: int | None = None
        self._last_ms = 0
        self.resyncs = 0

    def capture_ts_ms(self, t_s: float) -> int:
        now = self._now_ms()
        media_ms = round(t_s * 1000)
        if self._anchor_ms is None:
            self._anchor_ms = now - media_ms
        elif abs(self._anchor_ms + media_ms - now) > self.max_skew_ms:
            self._anchor_ms = now - media_ms
            self.resyncs += 1
        self._last_ms = max(self._last_ms, min(now, self._anchor_ms + media_ms))
        return self._last_ms
