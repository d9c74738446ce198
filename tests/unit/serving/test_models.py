"""Model runners: requests batched by the shared batcher, failures and resolution."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.detections import Detections
from pipeline.inference.base import FrameMeta, PreparedBatch, RawOutputs
from pipeline.serving.exceptions import NotFound, Unavailable
from pipeline.serving.metrics import ServingMetrics
from pipeline.serving.models import ModelRepository, ModelRunner, StaticResolver


class FakeDetector:
    """Returns one box per image whose score is the image's first pixel / 255."""

    def __init__(self, name: str = "m", version: str = "1", fail: bool = False) -> None:
        self.name, self.version, self.class_names = name, version, ("person",)
        self.batches: list[int] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def preprocess(self, images):
        tensor = np.stack([im.transpose(2, 0, 1).astype(np.float32) for im in images])
        return PreparedBatch(tensor, tuple(FrameMeta(1.0, *im.shape[:2]) for im in images))

    def run(self, batch):
        self.gate.wait(5)
        self.batches.append(len(batch))
        if self.fail:
            raise RuntimeError("model exploded")
        return RawOutputs((batch.tensor[:, 0, 0, 0] / 255,), batch.metas)

    def postprocess(self, raw):
        return [Detections.from_arrays([[0, 0, 1, 1]], [score], [0]) for score in raw.outputs[0]]


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def image(value: int) -> np.ndarray:
    return np.full((2, 2, 3), value, np.uint8)


def submit(runner: ModelRunner, value: int):
    """What a request does: letterbox in its own thread, then queue."""
    return runner.submit(runner.prepare(image(value)))


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    detector = FakeDetector()
    runner = ModelRunner(detector, max_batch=4, max_wait_ms=50, max_pending=16, metrics=ServingMetrics())
    runner.start()
    with ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(lambda v: submit(runner, v), range(8)))
    scores = [f.result(5).scores[0] for f in futures]
    runner.close()
    assert scores == pytest.approx([v / 255 for v in range(8)])
    assert max(detector.batches) > 1 and sum(detector.batches) == 8


def test_full_queue_is_503_and_failures_reach_every_request() -> None:
    detector = FakeDetector(fail=True)
    detector.gate.clear()  # hold the thread inside the first batch
    runner = ModelRunner(detector, max_batch=1, max_wait_ms=0, max_pending=2, metrics=ServingMetrics())
    runner.start()
    first = submit(runner, 1)
    wait_until(lambda: runner.pending == 0)  # the first image is inside the model
    queued = [submit(runner, 2), submit(runner, 3)]
    with pytest.raises(Unavailable, match="busy"):
        submit(runner, 4)
    detector.gate.set()
    for future in [first, *queued]:
        with pytest.raises(RuntimeError, match="exploded"):
            future.result(5)
    assert runner.ready  # a failed batch does not stop the thread
    runner.close()


def test_cancelled_requests_are_skipped() -> None:
    detector = FakeDetector()
    detector.gate.clear()
    runner = ModelRunner(detector, max_batch=1, max_wait_ms=0, max_pending=4, metrics=ServingMetrics())
    runner.start()
    running = submit(runner, 1)
    wait_until(lambda: runner.pending == 0)
    cancelled = submit(runner, 2)
    assert cancelled.cancel()
    detector.gate.set()
    assert running.result(5) is not None
    runner.close()
    assert detector.batches == [1]


def test_resolution_follows_the_assignment() -> None:
    metrics = ServingMetrics()
    runners = [ModelRunner(FakeDetector("m", v), 1, 0, 1, metrics) for v in ("1", "2")]
    runners.append(ModelRunner(FakeDetector("other", "7"), 1, 0, 1, metrics))
    repo = ModelRepository(runners, StaticResolver("m:2"))
    assert repo.get("m").version == "2"  # primary by default
    assert repo.get("m", "1").version == "1"  # a named version on request
    assert repo.get("other").version == "7"  # the only version of an unassigned model
    with pytest.raises(NotFound, match="unknown model"):
        repo.get("nope")
    with pytest.raises(NotFound, match="unknown version '3'"):
        repo.get("m", "3")
    assert not repo.ready  # threads not started
    missing = ModelRepository(runners, StaticResolver("m:9"))
    with pytest.raises(Unavailable, match="not loaded"):
        missing.get("m")
