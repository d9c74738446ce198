"""The bounded hand-over between camera readers and the producer (threads, no I/O).

Each camera has its own bounded FIFO, so one busy camera cannot crowd the others out,
and the producer takes from them in turn. When a camera's FIFO is full its reader
either blocks (backpressure: the source is read more slowly) or, if the operator chose
``drop_oldest``, the oldest waiting frame makes room and is handed back to be counted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Generic, TypeVar

from pipeline.ingest.config import WhenFull

T = TypeVar("T")


class _Lane(Generic[T]):
    def __init__(self, capacity: int, when_full: WhenFull) -> None:
        self.items: deque[T] = deque()
        self.capacity = capacity
        self.when_full = when_full
        self.closed = False


class FrameQueue(Generic[T]):
    """Per-camera bounded FIFOs drained round-robin by one consumer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane[T]] = {}
        self._order: list[str] = []
        self._next = 0

    def add_camera(self, camera_id: str, capacity: int, when_full: WhenFull = "block") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        with self._cond:
            if camera_id in self._lanes:
                raise ValueError(f"camera {camera_id!r} already has a queue")
            self._lanes[camera_id] = _Lane(capacity, when_full)
            self._order.append(camera_id)

    def put(self, camera_id: str, item: T, timeout_s: float | None = None) -> T | None:
        """Queue ``item``; returns the item dropped to make room (``drop_oldest``), else None.

        With ``block`` it waits for room up to ``timeout_s`` (None: forever) and raises
        ``queue.Full`` when the time runs out; the item is then not queued.
        """
        with self._cond:
            lane = self._lanes[camera_id]
            if lane.closed:
                raise ValueError(f"camera {camera_id!r}: put after close")
            dropped = None
            if len(lane.items) >= lane.capacity:
                if lane.when_full == "drop_oldest":
                    dropped = lane.items.popleft()
                elif not self._cond.wait_for(lambda: len(lane.items) < lane.capacity, timeout_s):
                    raise queue.Full
            lane.items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self, timeout_s: float | None = None) -> T | None:
        """The next item, taking cameras in turn; None if nothing came within ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                item = self._take()
                if item is not None:
                    self._cond.notify_all()
                    return item
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _take(self) -> T | None:
        for _ in range(len(self._order)):
            lane = self._lanes[self._order[self._next]]
            self._next = (self._next + 1) % len(self._order)
            if lane.items:
                return lane.items.popleft()
        return None

    def close(self, camera_id: str) -> None:
        """The camera's reader is done: no more puts. Items already queued are still served."""
        with self._cond:
            self._lanes[camera_id].closed = True
            self._cond.notify_all()

    def depth(self, camera_id: str) -> int:
        with self._cond:
            return len(self._lanes[camera_id].items)

    def finished(self) -> bool:
        """Every camera closed and every item taken."""
        with self._cond:
            return all(lane.closed and not lane.items for lane in self._lanes.values())
