"""The sink's retry backoff."""

from __future__ import annotations

from pipeline.sinks.clickhouse_writer import Backoff


def test_doubles_up_to_the_limit_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.failures == 5
    backoff.reset()
    assert backoff.next() == 0.5
