"""The failover verdict over a version's recent model runs (pure)."""

from __future__ import annotations

import pytest

from pipeline.shadow.assignment import FailoverLimits
from pipeline.shadow.health import HealthMonitor

LIMITS = FailoverLimits(max_error_rate=0.5, max_latency_ms=100.0, min_batches=4, window_batches=10)


@pytest.mark.parametrize("runs, expected", [
    # healthy and fast
    ([(20.0, False)] * 10, None),
    # too few runs for a verdict, however bad
    ([(500.0, True)] * 3, None),
    # most runs fail
    ([(20.0, True)] * 3 + [(20.0, False)] * 2, "error rate"),
    # slow: p95 over the limit
    ([(20.0, False)] * 3 + [(300.0, False)] * 2, "run time p95"),
    # one slow run in ten already lifts the interpolated p95 over the limit
    ([(20.0, False)] * 9 + [(300.0, False)], "run time p95"),
    # old failures leave the window
    ([(20.0, True)] * 6 + [(20.0, False)] * 10, None),
])
def test_verdict(runs, expected) -> None:
    monitor = HealthMonitor(LIMITS)
    verdict = None
    for run_ms, failed in runs:
        verdict = monitor.observe(run_ms, failed)
    assert (verdict is None) if expected is None else verdict.startswith(expected)
