"""Per-client token buckets: a sustained rate with a burst, and how long to wait when empty.

``TokenBucket`` is pure (the caller passes the time in), so it is tested without clocks.
``RateLimiter`` keeps one bucket per client in a bounded LRU table, so memory does not
grow with every client address ever seen.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; one token per request.

    Raising ``rate_per_s`` lets a client sustain more load; raising ``burst`` lets it
    send more at once after being idle (e.g. a batch of images) before it is throttled.
    """

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated_s = now_s

    def take(self, now_s: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        elapsed = max(0.0, now_s - self._updated_s)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._updated_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


class RateLimiter:
    """Thread-safe buckets keyed by client; per-client rates override the defaults."""

    def __init__(
        self,
        rate_per_s: float | None,
        burst: int,
        max_clients: int = 10_000,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._clock_s = clock_s
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str, rate_per_s: float | None = None, burst: int | None = None) -> float:
        """0.0 if ``key`` may go ahead, else the seconds it should wait (Retry-After)."""
        rate = rate_per_s if rate_per_s is not None else self.rate_per_s
        if rate is None:
            return 0.0
        with self._lock:
            now = self._clock_s()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, burst or self.burst, now)
                while len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket.take(now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)
