"""The inference worker's side of the model assignment: follow it, mirror frames, fail over.

``LiveModels`` is attached to a primary-role ``InferenceWorker``:

- it follows ``model-control`` and, when the primary changes, loads the new version on a
  thread of its own while the worker keeps serving the old one; once loaded and warmed up
  it replaces ``worker.detector`` (the pipeline reads it once per batch, so no batch mixes
  two versions, and every Detections record names the version that produced it);
- when the assignment has a canary (a version other than the primary), it loads that
  version the same way, beside the primary, and once loaded ``canary_for`` routes the
  cameras in the canary share (``assignment.in_share``) to it; until then, and once the
  canary ends (share 0, or promoted to primary), those cameras are served by the primary;
- a version that fails to load (missing file, sha256 mismatch, wrong inputs) or whose
  recent runs cross the assignment's ``FailoverLimits`` (``watched.WatchedDetector``,
  which also re-runs a failed batch on the version served before it: the previous primary
  for a promoted version, the primary for a canary) is rolled back, or for a canary
  ended, on model-control (``changed_by = auto:<worker>``), audited and alerted; the
  worker meanwhile serves the primary it had, so detections never stop;
- ``mirror`` copies the sampled frames (``assignment.sampled``) to ``frames.shadow``
  through its own producer with a small queue: when it is full the copy is dropped and
  counted, never waited for, so shadow load cannot slow the primary path.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class _CanaryRoute:
    """The loaded canary and the share of cameras it serves (replaced whole, never mutated)."""

    share: float
    detector: WatchedDetector


class LiveModels:
    """Model selection and frame mirroring of one primary-role worker."""

    def __init__(self, settings: Settings, load: Callable[[str], Detector]) -> None:
        self._settings = settings
        self._load = load
        self._by = "auto"
        self._worker: InferenceWorker | None = None
        self._lock = threading.Lock()
        self._loaded: dict[str, Detector] = {}
        self._loading: str | None = None  # the primary being loaded
        self._canary_loading: str | None = None
        self._canary: _CanaryRoute | None = None  # read by the worker's prepare thread
        self._failed: set[str] = set()  # versions this worker already reported
        self._assignment: am.Assignment | None = None
        self._mirror_topic = topics.name(settings, topics.FRAMES_SHADOW)
        self._mirror = Producer(producer_config(
            settings.kafka, **{"queue.buffering.max.messages": MIRROR_QUEUE_MESSAGES,
                               "enable.idempotence": False, "acks": 1}))
        self._follower = ControlFollower(settings, self._on_change)
        self.counts = {"mirrored": 0, "mirror_dropped": 0, "swaps": 0, "rollbacks": 0,
                       "canaries": 0, "canaries_ended": 0}

    # -- lifecycle (called by the worker) ---------------------------------------------------------

    def start(self, worker: "InferenceWorker") -> None:
        self._worker = worker
        self._by = f"auto:{worker.worker_id}"
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

    def canary_for(self, camera_id: str) -> Detector | None:
        """The loaded canary if ``camera_id`` is in its share, else None (the primary serves it)."""
        route = self._canary
        return route.detector if route is not None and am.in_share(camera_id, route.share) else None

    # -- following the assignment -----------------------------------------------------------------

    def _on_change(self, assignment: am.Assignment) -> None:
        if assignment.action == "promote":
            self._failed.discard(assignment.primary)  # promoted again on purpose: judge it afresh
        elif assignment.action == "canary" and assignment.canary is not None:
            self._failed.discard(assignment.canary.model)  # made the canary again on purpose
        with self._lock:
            self._assignment = assignment
            serving = self._serving_key()
            primary = assignment.primary if assignment.primary not in (serving, self._loading) else None
            if primary is not None:
                self._loading = primary
            canary = self._follow_canary(assignment)
        if primary is not None:
            log.info("model-control revision %d: primary %s (serving %s)", assignment.revision, primary, serving)
            threading.Thread(target=self._switch, args=(primary, assignment), name=f"load-{primary}",
                             daemon=True).start()
        if canary is not None:
            log.info("model-control revision %d: canary %s on %g of the cameras", assignment.revision, canary,
                     assignment.canary.share)
            threading.Thread(target=self._start_canary, args=(canary,), name=f"load-canary-{canary}",
                             daemon=True).start()

    def _serving_key(self) -> str:
        detector = self._worker.detector  # a WatchedDetector's name may be its fallback's
        return getattr(detector, "key", None) or f"{detector.name}:{detector.version}"

    def _wanted_canary(self, assignment: am.Assignment) -> am.Canary | None:
        canary = assignment.canary
        if canary is None or canary.model == assignment.primary or canary.model in self._failed:
            return None
        return canary

    def _follow_canary(self, assignment: am.Assignment) -> str | None:
        """Re-share, drop or replace the canary route (under the lock); the version to load."""
        wanted, route = self._wanted_canary(assignment), self._canary
        if wanted is not None and route is not None and route.detector.key == wanted.model:
            self._canary = replace(route, share=wanted.share)
            return None
        self._canary = None  # its cameras go to the primary (until the new canary is loaded)
        if wanted is None or wanted.model == self._canary_loading:
            return None
        self._canary_loading = wanted.model
        return wanted.model

    def _keep_loaded(self, model: str, detector: Detector) -> None:
        """Cache ``detector`` (under the lock), dropping the oldest versions not in use."""
        self._loaded[model] = detector
        in_use = {model, self._serving_key()} | ({self._canary.detector.key} if self._canary else set())
        for key in [k for k in self._loaded if k not in in_use][:max(0, len(self._loaded) - KEEP_LOADED)]:
            del self._loaded[key]

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
            self._keep_loaded(model, detector)
            serving = self._worker.detector
            # After a promotion the version served until now stands in for failed runs.
            fallback = getattr(serving, "inner", serving) if assignment.action == "promote" else None
            self._worker.detector = self._watch(detector, assignment.limits, fallback)
            if self._canary is not None:  # the new primary stands in for the canary's failed runs
                self._canary = replace(self._canary, detector=self._watch_canary(self._canary.detector.inner))
            self._loading = None
            self._count("swaps")
        log.info("now serving %s (model-control revision %d)", model, assignment.revision)

    def _start_canary(self, model: str) -> None:
        try:
            detector = self._loaded.get(model) or self._load(model)
        except Exception as exc:  # noqa: BLE001 - any load failure means: the primary serves, end it
            log.error("loading canary %s failed (%s); its cameras stay on %s", model, exc, self._serving_key())
            with self._lock:
                self._canary_loading = None if self._canary_loading == model else self._canary_loading
            self._fail_canary(model, f"load failed: {exc}")
            return
        with self._lock:
            mine = self._canary_loading == model
            self._canary_loading = None if mine else self._canary_loading
            wanted = self._wanted_canary(self._assignment)
            if not mine or wanted is None or wanted.model != model:
                return  # the assignment moved on while loading
            self._keep_loaded(model, detector)
            self._canary = _CanaryRoute(wanted.share, self._watch_canary(detector))
            self._count("canaries")
        log.info("canary %s now serves %g of the cameras", model, wanted.share)

    def _watch(self, detector: Detector, limits: am.FailoverLimits,
               fallback: Detector | None = None) -> WatchedDetector:
        return WatchedDetector(detector, limits, self._unhealthy, fallback)

    def _watch_canary(self, detector: Detector) -> WatchedDetector:
        """The canary judged by the assignment's limits, the primary standing in for its failed runs."""
        primary = self._worker.detector
        return WatchedDetector(detector, self._assignment.limits, self._canary_unhealthy,
                               getattr(primary, "inner", primary))

    # -- failover -------------------------------------------------------------------------------------

    def _unhealthy(self, model: str, verdict: str) -> None:
        if model not in self._failed:
            threading.Thread(target=self._fail, args=(model, verdict), daemon=True).start()

    def _canary_unhealthy(self, model: str, verdict: str) -> None:
        with self._lock:
            if self._canary is not None and self._canary.detector.key == model:
                self._canary = None  # from the next micro-batch on its cameras go to the primary
        if model not in self._failed:
            threading.Thread(target=self._fail_canary, args=(model, verdict), daemon=True).start()

    def _fail(self, model: str, reason: str) -> None:
        """Roll ``model`` back on model-control (if it is still the primary), audit, alert."""
        self._report(model, "rollbacks", f"model_failover:{model}",
                     lambda a: am.rollback(a, self._by, now_ms(), f"{model}: {reason}", failed=model),
                     lambda after: f"{model} rolled back to {after.primary} by {self._by}: {reason}")

    def _fail_canary(self, model: str, reason: str) -> None:
        """End the canary of ``model`` on model-control (if it still is the canary), audit, alert."""
        self._report(model, "canaries_ended", f"canary_failover:{model}",
                     lambda a: am.end_failed_canary(a, model, self._by, now_ms(), reason),
                     lambda after: f"canary {model} ended by {self._by}, its cameras are served by "
                                   f"{after.primary}: {reason}")

    def _report(self, model: str, counter: str, alert_id: str, fn: Callable[[am.Assignment], am.Assignment],
                message: Callable[[am.Assignment], str]) -> None:
        """Write the automatic change ``fn`` about the failed ``model`` once; alert if it changed anything."""
        with self._lock:
            if model in self._failed:
                return
            self._failed.add(model)
        try:
            before, after = change(self._settings, fn)
        except (am.AssignmentError, KafkaException) as exc:
            log.error("cannot apply the failover of %s: %s", model, exc)
            return
        except Exception:  # noqa: BLE001 - failover must not take the worker down
            log.exception("failover of %s failed", model)
            return
        if after is not before:
            self._count(counter)
            text = message(after)
            log.warning("%s", text)
            publish_alert(self._settings, alert_id, text)

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
