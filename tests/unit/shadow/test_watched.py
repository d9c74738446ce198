"""A watched detector: judged by its runs, failed runs re-run on the previous version."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.inference.base import PreparedBatch, RawOutputs
from pipeline.shadow.assignment import FailoverLimits
from pipeline.shadow.watched import WatchedDetector

INPUT = SimpleNamespace(model_dump=lambda exclude: {"height": 416, "width": 416})
SPEC = SimpleNamespace(input=INPUT, output=SimpleNamespace(shape=("batch", 3549, 85)))


class FakeDetector:
    def __init__(self, version: str, fail: bool = False, spec=SPEC) -> None:
        self.name, self.version, self.fail, self.spec = "m", version, fail, spec
        self.runs = 0

    def run(self, batch: PreparedBatch) -> RawOutputs:
        self.runs += 1
        if self.fail:
            raise RuntimeError("injected run failure")
        return RawOutputs((np.zeros((len(batch), 1)),), batch.metas)

    def postprocess(self, raw: RawOutputs) -> list:
        return [self.version] * len(raw)


def batch(n: int = 2) -> PreparedBatch:
    return PreparedBatch(np.zeros((n, 3, 4, 4), np.float32), tuple(range(n)))


def test_failed_runs_are_rerun_on_the_fallback_and_labelled_with_it() -> None:
    verdicts: list[tuple[str, str]] = []
    new, old = FakeDetector("2", fail=True), FakeDetector("1")
    watched = WatchedDetector(new, FailoverLimits(min_batches=3), lambda k, v: verdicts.append((k, v)), old)
    for i in range(3):
        out = watched.postprocess(watched.run(batch()))
        assert out == ["1", "1"] and (watched.name, watched.version) == ("m", "1")
    assert new.runs == old.runs == 3 and watched.fallback_batches == 3
    assert verdicts and verdicts[0][0] == "m:2" and verdicts[0][1].startswith("error rate 1.00")


def test_healthy_runs_keep_their_own_label() -> None:
    watched = WatchedDetector(FakeDetector("2"), FailoverLimits(), lambda k, v: None, FakeDetector("1"))
    assert watched.postprocess(watched.run(batch(3))) == ["2"] * 3 and watched.version == "2"


@pytest.mark.parametrize("fallback", [
    None,  # nothing served before
    FakeDetector("1", spec=SimpleNamespace(input=SimpleNamespace(model_dump=lambda exclude: {"height": 640}),
                                           output=SPEC.output)),  # another input size: tensor unusable
])
def test_without_a_compatible_fallback_the_error_propagates(fallback) -> None:
    watched = WatchedDetector(FakeDetector("2", fail=True), FailoverLimits(), lambda k, v: None, fallback)
    with pytest.raises(RuntimeError, match="injected"):
        watched.run(batch())
