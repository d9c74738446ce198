"""Micro-batch assembly: close a batch at ``max_batch`` items or ``max_wait_ms``
after its first item, whichever comes first (Triton's dynamic batching).

``MicroBatcher`` is pure: the caller passes the time in, so the logic is tested
without clocks or threads and a Kafka poll loop can drive it directly
(``add`` on each message, ``ready`` after each poll, ``deadline_ms`` to size
the next poll timeout). ``BlockingBatcher`` is a thin thread-safe wrapper for
a producer thread and a consumer thread (Kafka worker, HTTP server).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """FIFO of pending items, cut into batches by size or by the first item's age.

    ``max_batch``: raising it amortises per-run overhead (large on GPUs) but
    makes each batch wait longer to fill. ``max_wait_ms``: the most latency
    batching may add to a frame; 0 sends whatever is pending at once.
    """

    def __init__(self, max_batch: int, max_wait_ms: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self._items: deque[tuple[T, int]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now_ms: int) -> None:
        """Queue ``item``, arrived at ``now_ms`` (a monotonic clock)."""
        self._items.append((item, now_ms))

    def deadline_ms(self) -> int | None:
        """When the oldest pending item's batch closes by time; None when empty.

        With ``max_batch`` or more pending a batch is ready now, whatever this says.
        """
        if not self._items:
            return None
        return self._items[0][1] + self.max_wait_ms

    def ready(self, now_ms: int) -> list[T] | None:
        """Pop the next batch if it is full or its deadline has come, else None."""
        deadline = self.deadline_ms()
        if deadline is None:
            return None
        if len(self._items) >= self.max_batch or now_ms >= deadline:
            return self._pop(self.max_batch)
        return None

    def flush(self) -> list[T]:
        """Pop up to ``max_batch`` pending items regardless of time (shutdown, revoke)."""
        return self._pop(self.max_batch)

    def _pop(self, count: int) -> list[T]:
        count = min(count, len(self._items))
        return [self._items.popleft()[0] for _ in range(count)]


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class BlockingBatcher(Generic[T]):
    """Thread-safe ``MicroBatcher``: ``put`` from producers, ``get_batch`` from a consumer.

    ``max_pending`` bounds memory: ``put`` blocks (or, with ``timeout_s=0``,
    returns False so a Kafka worker can pause its partitions) while that many
    items wait.
    """

    def __init__(
        self,
        max_batch: int,
        max_wait_ms: int,
        max_pending: int | None = None,
        clock_ms: Callable[[], int] = monotonic_ms,
    ) -> None:
        self._core: MicroBatcher[T] = MicroBatcher(max_batch, max_wait_ms)
        self._max_pending = max_pending if max_pending is not None else 4 * max_batch
        if self._max_pending < max_batch:
            raise ValueError("max_pending must be >= max_batch")
        self._clock_ms = clock_ms
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._core)

    def put(self, item: T, timeout_s: float | None = None) -> bool:
        """Queue ``item``; False if still full after ``timeout_s`` or closed."""
        with self._cond:
            has_room = self._cond.wait_for(
                lambda: self._closed or len(self._core) < self._max_pending, timeout_s
            )
            if self._closed or not has_room:
                return False
            self._core.add(item, self._clock_ms())
            self._cond.notify_all()
            return True

    def get_batch(self, timeout_s: float | None = None) -> list[T] | None:
        """The next batch, waiting up to ``timeout_s``; None on timeout or once
        closed and drained."""
        give_up_ms = None if timeout_s is None else self._clock_ms() + timeout_s * 1000
        with self._cond:
            while True:
                now_ms = self._clock_ms()
                batch = self._core.ready(now_ms)
                if batch is None and self._closed:
                    batch = self._core.flush() or None
                if batch is not None or self._closed:
                    self._cond.notify_all()
                    return batch
                wake_ms = [t for t in (self._core.deadline_ms(), give_up_ms) if t is not None]
                if give_up_ms is not None and now_ms >= give_up_ms:
                    return None
                wait_s = (min(wake_ms) - now_ms) / 1000 if wake_ms else None
                self._cond.wait(None if wait_s is None else max(wait_s, 0.0005))

    def close(self) -> None:
        """Refuse new items and let ``get_batch`` drain what is pending."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
