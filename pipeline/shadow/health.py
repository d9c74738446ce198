"""Is a serving model version healthy? A pure verdict over its recent model runs."""

from __future__ import annotations

from collections import deque

from pipeline.shadow.assignment import FailoverLimits
from pipeline.shadow.comparator import percentile


class HealthMonitor:
    """The last ``limits.window_batches`` runs of one version: their run time and whether
    they failed. ``observe`` returns why the version should be rolled back, or None."""

    def __init__(self, limits: FailoverLimits) -> None:
        self.limits = limits
        self._runs: deque[tuple[float, bool]] = deque(maxlen=limits.window_batches)

    def observe(self, run_ms: float, failed: bool = False) -> str | None:
        self._runs.append((run_ms, failed))
        return self.verdict()

    def verdict(self) -> str | None:
        if len(self._runs) < self.limits.min_batches:
            return None
        errors = sum(failed for _, failed in self._runs) / len(self._runs)
        if errors > self.limits.max_error_rate:
            return f"error rate {errors:.2f} over the last {len(self._runs)} runs > {self.limits.max_error_rate:g}"
        p95 = percentile([ms for ms, failed in self._runs if not failed], 95)
        if p95 > self.limits.max_latency_ms:
            return f"run time p95 {p95:.0f} ms over the last {len(self._runs)} runs > {self.limits.max_latency_ms:g} ms"
        return None
