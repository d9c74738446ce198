"""Sampling a video stream to a target frame rate by presentation time (no I/O)."""

from __future__ import annotations


class FrameSampler:
    """Keeps frames so that, by presentation time, at most ``fps`` frames a second pass.

    Each frame earns the time since the previous one, in units of ``1/fps`` ("slots");
    a frame is kept when the earned time reaches one slot, which then is spent. This is
    Bresenham's line drawing in time: a 25 fps source sampled at 5 fps keeps every 5th
    frame, 30 -> 25 fps keeps 5 frames of each 6, 29.97 -> 10 fps never drifts, and a
    source slower than the target keeps every frame without repeating any. Counting
    earned time rather than fixed grid lines is what makes jitter harmless: a frame a
    little late leaves its credit to the next one, instead of leaving a slot empty.

    A frame may come a little early: up to ``max_early`` of a slot, but never more than
    half the source's latest frame interval. The first absorbs timestamp jitter and
    time-base rounding (24 fps in ms); the second keeps a fast source from giving the
    frame just before the ideal one. Earned time is capped at two slots, so after a gap
    (lost frames, a stall) at most one extra frame is kept, never a burst.

    A timestamp more than ``restart_after_s`` before the previous one means the source's
    clock restarted (a camera reboot, a wrapped counter): sampling starts afresh there.
    """

    #: Earned time kept across a gap, in slots.
    MAX_CREDIT = 2.0

    def __init__(self, fps: float, max_early: float = 0.25, restart_after_s: float = 1.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not 0 <= max_early < 0.5:
            raise ValueError(f"max_early must be in [0, 0.5), got {max_early}")
        self.fps = fps
        self.max_early = max_early
        self.restart_after_s = restart_after_s
        self._prev_s: float | None = None
        self._credit = 0.0

    def reset(self) -> None:
        """Start afresh: the next frame is kept (a reopened stream)."""
        self._prev_s = None

    def offer(self, t_s: float) -> bool:
        """Whether the frame presented at ``t_s`` seconds is kept."""
        if self._prev_s is None or t_s < self._prev_s - self.restart_after_s:
            self._prev_s = t_s
            self._credit = 0.0
            return True
        step = (t_s - self._prev_s) * self.fps  # in slots
        if step <= 0:  # a repeated timestamp, or a small step back: never kept, earns nothing
            return False
        self._prev_s = t_s
        self._credit = min(self.MAX_CREDIT, self._credit + step)
        if self._credit >= 1.0 - min(self.max_early, 0.5 * step):
            self._credit -= 1.0
            return True
        return False
