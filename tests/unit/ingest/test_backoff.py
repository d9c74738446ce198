from __future__ import annotations

import random

import pytest

from pipeline.ingest.backoff import Backoff


def test_doubles_up_to_the_cap_without_jitter():
    backoff = Backoff(500, 30_000, multiplier=2.0, jitter=0.0)
    assert [backoff.next_ms() for _ in range(9)] == [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]


def test_reset_after_a_good_connection_starts_from_the_shortest_delay():
    backoff = Backoff(200, 10_000, jitter=0.0)
    [backoff.next_ms() for _ in range(5)]
    backoff.reset()
    assert backoff.next_ms() == 200 and backoff.attempt == 1


@pytest.mark.parametrize("jitter", [0.5, 1.0, 0.1])
def test_jitter_takes_up_to_its_share_off_each_delay(jitter):
    backoff = Backoff(1000, 64_000, jitter=jitter, rng=random.Random(7))
    for attempt in range(10):
        ceiling = backoff.ceiling_ms(attempt)
        delay = backoff.next_ms()
        assert max(1, ceiling * (1 - jitter)) - 1 <= delay <= ceiling


def test_jitter_spreads_cameras_that_failed_together():
    # 50 cameras behind one bridge that went down: their 4th retries do not coincide.
    delays = []
    for seed in range(50):
        backoff = Backoff(500, 30_000, jitter=0.5, rng=random.Random(seed))
        delays.append([backoff.next_ms() for _ in range(4)][-1])
    assert len(set(delays)) > 40 and 2000 <= min(delays) and max(delays) <= 4000


def test_many_attempts_do_not_overflow():
    backoff = Backoff(500, 30_000, multiplier=3.0, jitter=0.0)
    assert backoff.ceiling_ms(100_000) == 30_000


@pytest.mark.parametrize(
    ("initial_ms", "max_ms", "multiplier", "jitter"),
    [
        (0, 1000, 2.0, 0.5),  # no initial delay
        (2000, 1000, 2.0, 0.5),  # cap below the first delay
        (500, 1000, 0.5, 0.5),  # shrinking delays
        (500, 1000, 2.0, 1.5),  # jitter above 100%
    ],
)
def test_rejects_bad_parameters(initial_ms, max_ms, multiplier, jitter):
    with pytest.raises(ValueError):
        Backoff(initial_ms, max_ms, multiplier, jitter)
