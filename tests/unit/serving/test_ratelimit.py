"""Token buckets: burst, refill, Retry-After, per-client rates, bounded client table."""

from __future__ import annotations

import pytest

from pipeline.serving.ratelimit import RateLimiter, TokenBucket


def test_burst_then_refill() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now_s=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token takes 0.5 s at 2/s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # idle time refills only up to the burst
    assert sum(bucket.take(100.0) == 0.0 for _ in range(5)) == 2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_clients_have_their_own_buckets_and_rates() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock_s=clock)
    assert limiter.check("a") == 0.0 and limiter.check("a") > 0.0
    assert limiter.check("b") == 0.0  # a's bucket does not throttle b
    assert [limiter.check("vip", rate_per_s=100.0, burst=5) for _ in range(5)] == [0.0] * 5
    clock.now = 1.0
    assert limiter.check("a") == 0.0


def test_disabled_and_bounded() -> None:
    assert RateLimiter(None, 1).check("a") == 0.0
    limiter = RateLimiter(1.0, 1, max_clients=3, clock_s=Clock())
    for key in "abcde":
        limiter.check(key)
    assert len(limiter) == 3
    assert limiter.check("a") == 0.0  # "a" was forgotten (least recently seen): a fresh bucket
