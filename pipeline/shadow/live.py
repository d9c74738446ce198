"""The inference worker's side of the model assignment: follow it, mirror frames, fail over.

``LiveModels`` is attached to a primary-role ``InferenceWorker``:

- it follows ``model-control`` and, when the primary changes, loads the new version on a
  thread of its own while the worker keeps serving the old one; once loaded and warmed up
  it replaces ``worker.detector`` (the pipeline reads it once per batch, so no batch mixes
  two versions, and every Detections record names the version that produced it);
- a version that fails to load (missing file, sha256 mismatch, wrong inputs) or whose
  recent runs cross the assignment's ``FailoverLimits`` (``watched.WatchedDetector``,
  which also re-runs a failed batch on the previous version) is rolled back on model-control
  (``changed_by = auto:<worker>``), audited and alerted; the worker meanwhile serves the
  version it had, so detections never stop;
- ``mirror`` copies the sampled frames (``assignment.sampled``) to ``frames.shadow``
  through its own producer with a small queue: when it is full the copy is dropped and
  counted, never waited for, so shadow load cannot slow the primary path.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from confluent_kafka import KafkaException, Producer

from pipeline.config import Settings
from pipeline.inference.base import Detector
from pipeline.kafka import topics
from pipeline.kafka.clients import producer_config
from pipeline.shadow import assignment as am
from pipeline.shadow.control import ControlFollower, change, now_ms, publish_alert
from pipeline.shadow.watched import WatchedDetector

if TYPE_CHECKING:
    from pipeline.inference.worker import InferenceWorker

log = logging.getLogger(__name__)

#: Frames the mirror producer may hold unacknowledged before copies are dropped.
MIRROR_QUEUE_MESSAGES = 200
#: Loaded versions kept in memory, so a rollback to a recent one is instant.
KEEP_LOADED = 3


class LiveModels:
    """Model selection and frame mirroring of one primary-role worker."""

    def __init__(self, settings: Settings, load: Callable[[str], Detector], worker_id: str) -> None:
        self._settings = settings
        self._load = load
        self._by = f"auto:{worker_id}"
        self._worker: InferenceWorker | None = None
        self._lock = threading.Lock()
        self._loaded: dict[str, Detector] = {}
        self._loading: str | None = None
        self._failed: set[str] = set()  # versions this worker already reported
        self._assignment: am.Assignment | None = None
        self._mirror_topic = topics.name(settings, topics.FRAMES_SHADOW)
        self._mirror = Producer(producer_config(
            settings.kafka, **{"queue.buffering.max.messages": MIRROR_QUEUE_MESSAGES,
                               "enable.idempotence": False, "acks": 1}))
        self._follower = ControlFollower(settings, self._on_change)
        self.counts = {"mirrored": 0, "mirror_dropped": 0, "swaps": 0, "rollbacks": 0}

    # -- lifecycle (called by the worker) ---------------------------------------------------------

    def start(self, worker: "InferenceWorker") -> None:
        self._worker = worker
        current = worker.detector
        self._loaded[f"{current.name}:{current.version}"] = current
        worker.detector = self._watch(current, am.FailoverLimits())
        self._follower.start()

    def stop(self) -> None:
        self._follower.stop()
        left = self._mirror.flush(5.0)
        log.info("model-control: %s%s", self.counts, f"; {left} mirrored frames not acknowledged" if left else "")

    def _count(self, name: str) -> None:
        """Here for tests and logs, and in the worker's totals as ``model_<name>``."""
        self.counts[name] += 1
        self._worker.stats.count(f"model_{name}")

    # -- following the assignment -----------------------------------------------------------------

    def _on_change(self, assignment: am.Assignment) -> None:
        self._assignment = assignment
        target = assignment.primary
        if assignment.action == "promote":
            self._failed.discard(target)  # promoted again on purpose: judge it afresh
        with self._lock:
            serving = self._serving_key()
            if target == serving or target == self._loading:
                return
            self._loading = target
        log.info("model-control revision %d: primary %s (serving %s)", assignment.revision, target, serving)
        threading.Thread(target=self._switch, args=(target, assignment), name=f"load-{target}",
                         daemon=True).start()

    def _serving_key(self) -> str:
        detector = self._worker.detector  # a WatchedDetector's name may be its fallback's
        return getattr(detector, "key", None) or f"{detector.name}:{detector.version}"

    def _switch(self, model: str, assignment: am.Assignment) -> None:
        try:
            detector = self._loaded.get(model) or self._load(model)
        except Exception as exc:  # noqa: BLE001 - any load failure means: keep serving, roll back
            log.error("loading %s failed (%s); still serving %s", model, exc, self._serving_key())
            with self._lock:
                self._loading = None
            self._fail(model, f"load failed: {exc}")
            return
        with self._lock:
            if self._loading != model or (self._assignment and self._assignment.primary != model):
                self._loading = None if self._loading == model else self._loading
                return  # the assignment moved on while loading
            self._loaded[model] = detector
            while len(self._loaded) > KEEP_LOADED:
                self._loaded.pop(next(k for k in self._loaded if k != model))
            serving = self._worker.detector
            # After a promotion the version served until now stands in for failed runs.
            fallback = getattr(serving, "inner", serving) if assignment.action == "promote" else None
            self._worker.detector = self._watch(detector, assignment.limits, fallback)
            self._loading = None
            self._count("swaps")
        log.info("now serving %s (model-control revision %d)", model, assignment.revision)

    def _watch(self, detector: Detector, limits: am.FailoverLimits,
               fallback: Detector | None = None) -> WatchedDetector:
        return WatchedDetector(detector, limits, self._unhealthy, fallback)

    def _unhealthy(self, model: str, verdict: str) -> None:
        if model not in self._failed:
            threading.Thread(target=self._fail, args=(model, verdict), daemon=True).start()

    def _fail(self, model: str, reason: str) -> None:
        """Roll ``model`` back on model-control (if it is still the primary), audit, alert."""
        if model in self._failed:
            return
        self._failed.add(model)
        try:
            before, after = change(self._settings, lambda a: am.rollback(
                a, self._by, now_ms(), f"{model}: {reason}", failed=model))
        except (am.AssignmentError, KafkaException) as exc:
            log.error("cannot roll back %s: %s", model, exc)
            return
        except Exception:  # noqa: BLE001 - failover must not take the worker down
            log.exception("rollback of %s failed", model)
            return
        if after is not before:
            self._count("rollbacks")
            log.warning("rolled back %s -> %s: %s", model, after.primary, reason)
            publish_alert(self._settings, f"model_failover:{model}",
                          f"{model} rolled back to {after.primary} by {self._by}: {reason}")

    # -- mirroring ------------------------------------------------------------------------------------

    def mirror(self, frame: dict, key: bytes | None, value: bytes, headers) -> None:
        """Copy one frame to ``frames.shadow`` when it is in the sample (never blocks)."""
        rate = self._assignment.shadow_rate if self._assignment is not None else 0.0
        if rate <= 0.0 or not (frame.get("end_of_stream", False) or
                               am.sampled(frame["camera_id"], frame["seq"], rate)):
            return
        try:
            self._mirror.produce(self._mirror_topic, value=value, key=key, headers=headers)
            self._count("mirrored")
        except BufferError:
            self._count("mirror_dropped")
        self._mirror.poll(0)
