"""Exponential reconnect delays with jitter (no I/O)."""

from __future__ import annotations

import math
import random


class Backoff:
    """Delays of ``initial_ms * multiplier**attempt``, capped at ``max_ms``, with jitter.

    Jitter takes a random share, up to ``jitter`` (0..1), off each delay, so cameras that
    lost their connection together (one bridge, one switch) don't all retry in the same
    instant. ``jitter=0`` gives exact delays; ``jitter=1`` is "full jitter" (0..delay).
    ``reset()`` after a connection that worked brings the next delay back to ``initial_ms``.
    """

    def __init__(self, initial_ms: int, max_ms: int, multiplier: float = 2.0, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        if initial_ms <= 0 or max_ms < initial_ms:
            raise ValueError(f"need 0 < initial_ms <= max_ms, got {initial_ms}, {max_ms}")
        if multiplier < 1 or not 0 <= jitter <= 1:
            raise ValueError(f"need multiplier >= 1 and 0 <= jitter <= 1, got {multiplier}, {jitter}")
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def ceiling_ms(self, attempt: int) -> int:
        """The delay before jitter for the ``attempt``-th retry (0-based)."""
        # Compare exponents instead of computing huge powers after many attempts.
        if self.multiplier > 1 and attempt * math.log(self.multiplier) >= math.log(self.max_ms / self.initial_ms):
            return self.max_ms
        return min(self.max_ms, round(self.initial_ms * self.multiplier ** attempt))

    def next_ms(self) -> int:
        """The delay before the next retry; each call counts one attempt."""
        ceiling = self.ceiling_ms(self.attempt)
        self.attempt += 1
        return max(1, round(ceiling * (1.0 - self.jitter * self._rng.random())))

    def reset(self) -> None:
        self.attempt = 0

