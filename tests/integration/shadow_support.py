"""Helpers of the model lifecycle tests (test_shadow, test_canary, test_camera_groups): frames
of two cameras, a registry with a broken version, a worker whose runs of one version fail.
(No tests here.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.kafka.clients import producer_config
from pipeline.shadow import assignment as am
from pipeline.shadow import control
from tests.conftest import with_overrides
from tests.integration.test_inference_support import (
    WorkerThread, clip_jpegs, frame_value, group, produce, read_detections,
)

B1 = "yolox-nano:1-b1"
#: In the repo registry plus ``broken_registry``: the batch-1 file with a wrong sha256.
BAD = "yolox-nano:1-bad"
#: Clip frames decoded at once (cached): every call of ``produce_frames`` up to here reuses them.
CLIP_FRAMES = 60


def wait_for(condition, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def produce_frames(settings: Settings, video: Path, seqs: range, cameras: int = 2,
                   end_of_stream: bool = False, producer: Producer | None = None) -> list[tuple[str, int]]:
    """Clip frame ``seq`` to every camera (same image per camera), plus end-of-stream markers."""
    frames = clip_jpegs(video, max(seqs.stop, CLIP_FRAMES))
    keys = [(f"cam-{c}", s) for s in seqs for c in range(cameras)]
    messages = [(cam, frame_value(cam, seq, *frames[seq])) for cam, seq in keys]
    if end_of_stream:
        jpeg, width, height = frames[0]
        messages += [(f"cam-{c}", frame_value(f"cam-{c}", seqs.stop, b"", width, height, end_of_stream=True))
                     for c in range(cameras)]
    produce(settings, messages, producer)
    return keys


class Feeder(threading.Thread):
    """Frames of cam-0 and cam-1, two seqs every 0.1 s up to ``seqs``: traffic that keeps
    coming while the assignment changes. ``keys`` are those produced so far."""

    def __init__(self, settings: Settings, video: Path, seqs: int = 60) -> None:
        super().__init__(daemon=True)
        self._settings, self._video, self._seqs = settings, video, seqs
        self._stopped = threading.Event()
        self._producer = Producer(producer_config(settings.kafka))
        self.keys: list[tuple[str, int]] = []

    def run(self) -> None:
        seq = 0
        while not self._stopped.is_set() and seq < self._seqs:
            self.keys.extend(produce_frames(self._settings, self._video, range(seq, seq + 2),
                                            producer=self._producer))
            seq += 2
            time.sleep(0.1)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def change_while_feeding(settings: Settings, video: Path, worker: WorkerThread,
                         change: Callable[[am.Assignment], am.Assignment], done: Callable[[], bool],
                         what: str, seqs: int = 60) -> tuple[dict, list]:
    """Frames keep coming (``Feeder``) while ``change`` is made on model-control, until
    ``done``: the detections of every frame fed, and their keys. Stops ``worker``."""
    feeder = Feeder(settings, video, seqs=seqs)
    feeder.start()
    try:
        time.sleep(1.0)
        control.change(settings, change)
        wait_for(done, 30, what)
        feeder.join()
        return read_detections(settings, feeder.keys), feeder.keys
    finally:
        if feeder.is_alive():
            feeder.stop()
        worker.worker.stop()
        worker.join()


def change_and_undo(settings: Settings, video: Path, group_id: str, change: Callable[[], int | None],
                    changed: Callable[[Any], bool], undo: Callable[[], int | None], undone: Callable[[Any], bool],
                    ) -> tuple[list, list, list, dict]:
    """Frames served before a model change, under it and after it is undone, by one following
    worker: the three lists of frame keys and the detections of all of them. ``change`` and
    ``undo`` may be CLI calls: a non-zero exit status fails."""
    worker = WorkerThread(settings, follow=True, group_id=group_id, idle_exit_s=20).start()
    live = worker.worker._live
    try:
        first = produce_frames(settings, video, range(0, 6))
        read_detections(settings, first)
        assert change() in (None, 0), "the change failed"
        wait_for(lambda: changed(live), what="the change to take effect")
        second = produce_frames(settings, video, range(6, 16))
        read_detections(settings, first + second)
        assert undo() in (None, 0), "the undo failed"
        wait_for(lambda: undone(live), what="the change to be undone")
        third = produce_frames(settings, video, range(16, 22))
        return first, second, third, read_detections(settings, first + second + third)
    finally:
        worker.worker.stop()
        worker.join()


def versions(got: dict, keys: list) -> set[str]:
    """The model versions named by the detections of ``keys`` (``read_detections``'s result)."""
    return {r["model_version"] for key in keys for r in got[key]}


def with_broken_version(settings: Settings, tmp_path: Path) -> Settings:
    """``settings`` whose registry also has ``BAD`` (``broken_registry``), models from the repo's dir."""
    from pipeline.inference.registry import default_models_dir

    return with_overrides(settings, models={"registry": broken_registry(tmp_path), "dir": default_models_dir()})


def broken_registry(tmp_path: Path) -> Path:
    """The repo registry plus ``BAD``: the batch-1 file with a wrong sha256."""
    from pipeline.inference.registry import DEFAULT_REGISTRY_PATH

    raw = yaml.safe_load(DEFAULT_REGISTRY_PATH.read_text())
    bad = dict(next(m for m in raw["models"] if m["version"] == "1-b1"), version="1-bad", sha256="0" * 64)
    raw["models"].append(bad)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class FailingRuns:
    """A real detector whose model runs raise (errors injected into a loaded version)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def run(self, batch):
        raise RuntimeError("injected run failure")


def worker_failing_on(settings: Settings, model: str, name: str) -> WorkerThread:
    """A primary worker following model-control (id ``w-<name>``) whose ``model``, once
    loaded, fails every run."""
    from pipeline.inference.build import load_worker_detector
    from pipeline.inference.worker import InferenceWorker
    from pipeline.shadow.live import LiveModels

    def load(key: str):
        detector = load_worker_detector(settings, key)
        return FailingRuns(detector) if key == model else detector

    return WorkerThread(settings, InferenceWorker(
        settings, load_worker_detector(settings), group_id=group(settings, name), worker_id=f"w-{name}",
        idle_exit_s=20, live=LiveModels(settings, load)))
