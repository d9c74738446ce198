"""A serving detector judged by its recent runs, with the previous version as a fallback.

``WatchedDetector`` times every model run and reports a ``HealthMonitor`` verdict (error
rate, run-time p95 over ``FailoverLimits``) to ``on_unhealthy``, which takes the version
out of service. Until then, a run that raises is re-run on ``fallback`` (for a promoted
global primary the version served before the promotion; for a canary or a camera group's
primary the global primary) when both take the same input tensor, so the batch still
gets boxes; those records name the fallback version, since it produced them. Without a
compatible fallback the error propagates (the worker stops and its frames are replayed).

The pipeline calls ``postprocess`` and then reads ``name``/``version`` for each batch on
its output thread, in order: ``postprocess`` sets the label the next reads return.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from pipeline.inference.base import Detector, PreparedBatch, RawOutputs
from pipeline.shadow.assignment import FailoverLimits
from pipeline.shadow.health import HealthMonitor

log = logging.getLogger(__name__)


def same_input(a: Detector, b: Detector) -> bool:
    """Whether a batch tensor prepared by ``a`` is valid input for ``b``."""
    spec_a, spec_b = getattr(a, "spec", None), getattr(b, "spec", None)
    if spec_a is None or spec_b is None:
        return False
    keep = lambda s: s.input.model_dump(exclude={"dynamic_batch", "name"})  # noqa: E731
    return keep(spec_a) == keep(spec_b) and spec_a.output.shape[1:] == spec_b.output.shape[1:]


class WatchedDetector:
    """``inner`` with its runs timed and judged; everything else is ``inner``'s."""

    def __init__(self, inner: Detector, limits: FailoverLimits, on_unhealthy: Callable[[str, str], None],
                 fallback: Detector | None = None) -> None:
        self.inner = inner
        self.key = f"{inner.name}:{inner.version}"
        self.fallback = fallback if fallback is not None and same_input(inner, fallback) else None
        self._monitor = HealthMonitor(limits)
        self._on_unhealthy = on_unhealthy
        self._from_fallback: set[int] = set()  # ids of RawOutputs the fallback produced
        self._label = (inner.name, inner.version)
        self.fallback_batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self._label[0]

    @property
    def version(self) -> str:
        return self._label[1]

    def run(self, batch: PreparedBatch) -> RawOutputs:
        start = time.perf_counter()
        try:
            raw = self.inner.run(batch)
        except Exception as exc:
            self._check(1000 * (time.perf_counter() - start), failed=True)
            if self.fallback is None:
                raise
            log.warning("%s failed a run (%s); re-running the batch on %s:%s", self.key, exc,
                        self.fallback.name, self.fallback.version)
            raw = self.fallback.run(batch)
            self._from_fallback.add(id(raw))
            self.fallback_batches += 1
            return raw
        self._check(1000 * (time.perf_counter() - start), failed=False)
        return raw

    def postprocess(self, raw: RawOutputs) -> list:
        if id(raw) in self._from_fallback:
            self._from_fallback.discard(id(raw))
            self._label = (self.fallback.name, self.fallback.version)
            return self.fallback.postprocess(raw)
        self._label = (self.inner.name, self.inner.version)
        return self.inner.postprocess(raw)

    def _check(self, run_ms: float, failed: bool) -> None:
        verdict = self._monitor.observe(run_ms, failed)
        if verdict is not None:
            self._on_unhealthy(self.key, verdict)
