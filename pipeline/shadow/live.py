"""The inference worker's side of the model assignment: follow it, route cameras, fail over.

``LiveModels`` is attached to a primary-role ``InferenceWorker``. It follows
``model-control`` and keeps loaded every version the assignment routes cameras to
(``Assignment.serving``: the global primary, the canary, each camera group's primary), one
mechanism for all of them:

- a version not loaded yet is loaded on a thread of its own (one loader, and a cache of
  the ``KEEP_LOADED`` most recent versions that never evicts one in use) while the worker
  keeps serving what it has;
- the global primary, once loaded and warmed up, replaces ``worker.detector`` (the
  pipeline reads it once per batch, so no batch mixes two versions, and every Detections
  record names the version that produced it); after a promotion the version it replaced
  re-runs its failed batches;
- every other version, once loaded, joins the routing: ``detector_for(camera_id)`` gives
  the version ``assignment.model_for_camera`` names for the camera (its group's primary,
  the canary), judged by the assignment's limits with the global primary re-running its
  failed batches; None (the worker's global primary serves the camera) until it is
  loaded, and from the moment the assignment stops routing the camera to it;
- a version that fails to load (missing file, sha256 mismatch, wrong inputs) or whose
  recent runs cross the ``FailoverLimits`` (``watched.WatchedDetector``) leaves the routing
  at once (its cameras go to the global primary) and is taken out of every role it has on
  model-control by ``auto:<worker>``: the global primary rolled back, the canary ended,
  each camera group it serves rolled back within the group; each change is audited and
  alerted. The worker keeps serving meanwhile, so detections never stop. It is not loaded
  again until an operator sets it again (or it stopped serving and comes back);
- ``mirror`` copies the sampled frames to ``frames.shadow`` (``mirror.FrameMirror``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Mapping

from confluent_kafka import KafkaException

from pipeline.config import Settings
from pipeline.inference.base import Detector
from pipeline.shadow import assignment as am
from pipeline.shadow.control import ControlFollower, change, now_ms, publish_alert
from pipeline.shadow.mirror import FrameMirror
from pipeline.shadow.watched import WatchedDetector

if TYPE_CHECKING:
    from pipeline.inference.worker import InferenceWorker

log = logging.getLogger(__name__)

#: Loaded versions kept in memory, so a rollback to a recent one is instant.
KEEP_LOADED = 3


@dataclass(frozen=True)
class _Routing:
    """The assignment and its loaded versions other than the global primary (replaced whole,
    never mutated: the worker's prepare thread reads it without the lock)."""

    assignment: am.Assignment | None = None
    detectors: Mapping[str, WatchedDetector] = field(default_factory=dict)

    def detector_for(self, camera_id: str) -> WatchedDetector | None:
        if not self.detectors:
            return None
        return self.detectors.get(self.assignment.model_for_camera(camera_id))

    def without(self, model: str) -> "_Routing":
        return replace(self, detectors={m: d for m, d in self.detectors.items() if m != model})


@dataclass(frozen=True)
class _Failover:
    """Taking a failed version out of one of its roles: the change, and how it is reported."""

    counter: str
    alert_id: str
    change: Callable[[am.Assignment], am.Assignment]
    message: Callable[[am.Assignment], str]


class LiveModels:
    """Model selection and frame mirroring of one primary-role worker."""

    def __init__(self, settings: Settings, load: Callable[[str], Detector]) -> None:
        self._settings = settings
        self._load = load
        self._by = "auto"
        self._worker: InferenceWorker | None = None
        self._lock = threading.Lock()
        self._loaded: dict[str, Detector] = {}  # the cache, oldest first
        self._loading: set[str] = set()
        self._routing = _Routing()
        self._failed: set[str] = set()  # versions this worker took out of service
        self._assignment: am.Assignment | None = None
        self._mirror = FrameMirror(settings, self._count)
        self._follower = ControlFollower(settings, self._on_change)
        self.counts = dict.fromkeys(("mirrored", "mirror_dropped", "swaps", "routes", "rollbacks",
                                     "canaries_ended", "group_rollbacks"), 0)

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

    def detector_for(self, camera_id: str) -> Detector | None:
        """The loaded version serving ``camera_id`` when it is not the global primary (its
        group's primary, the canary); None: the worker's ``detector`` serves it."""
        return self._routing.detector_for(camera_id)

    def mirror(self, frame: dict, key: bytes | None, value: bytes, headers) -> None:
        """Copy one frame to ``frames.shadow`` when it is in the sample (never blocks)."""
        a = self._assignment
        self._mirror.copy(a.shadow_rate if a is not None else 0.0, frame, key, value, headers)

    # -- following the assignment -----------------------------------------------------------------

    def _on_change(self, a: am.Assignment) -> None:
        with self._lock:
            if a.action in ("promote", "canary"):
                self._failed.discard(a.subject)  # set again on purpose: judged afresh
            self._failed &= set(a.serving)  # out of service, then back later: judged afresh too
            self._assignment = a
            wanted = self._wanted(a)
            self._routing = _Routing(a, {m: d for m, d in self._routing.detectors.items() if m in wanted})
            missing = [m for m in wanted if m not in self._routing.detectors]
            if a.primary != self._serving_key() and a.primary not in self._failed:
                missing.insert(0, a.primary)
            start = [m for m in missing if m not in self._loading]
            self._loading.update(start)
        for model in start:
            log.info("model-control revision %d: loading %s (serving %s)", a.revision, model, self._serving_key())
            threading.Thread(target=self._load_version, args=(model,), name=f"load-{model}", daemon=True).start()

    def _wanted(self, a: am.Assignment) -> list[str]:
        """The versions to route cameras to beside the global primary (not the failed ones)."""
        return [m for m in a.serving if m != a.primary and m not in self._failed]

    def _serving_key(self) -> str:
        detector = self._worker.detector  # a WatchedDetector's name may be its fallback's
        return getattr(detector, "key", None) or f"{detector.name}:{detector.version}"

    def _load_version(self, model: str) -> None:
        try:
            detector = self._loaded.get(model) or self._load(model)
        except Exception as exc:  # noqa: BLE001 - any load failure means: keep serving, fail over
            log.error("loading %s failed (%s); its cameras stay on %s", model, exc, self._serving_key())
            with self._lock:
                self._loading.discard(model)
            self._out_of_service(model, f"load failed: {exc}")
            return
        with self._lock:
            self._loading.discard(model)
            self._keep_loaded(model, detector)
            a = self._assignment
            if model == a.primary and model != self._serving_key():
                self._swap_primary(detector, a)
                self._count("swaps")
            elif model in self._wanted(a) and model not in self._routing.detectors:
                self._routing = replace(self._routing, detectors={**self._routing.detectors,
                                                                  model: self._route(detector)})
                self._count("routes")
            else:
                return  # the assignment moved on while loading
        log.info("%s now serves its cameras (model-control revision %d)", model, a.revision)

    def _swap_primary(self, detector: Detector, a: am.Assignment) -> None:
        """(Under the lock.) ``detector`` serves every camera not routed elsewhere from the next batch."""
        serving = self._worker.detector
        # Promoted over the version served until now: that one re-runs the new one's failed batches.
        fallback = getattr(serving, "inner", serving) if self._serving_key() in a.history else None
        self._worker.detector = self._watch(detector, a.limits, fallback)
        # The new global primary stands in for the other versions' failed runs.
        self._routing = replace(self._routing, detectors={m: self._route(d.inner)
                                                          for m, d in self._routing.detectors.items()})

    def _keep_loaded(self, model: str, detector: Detector) -> None:
        """Cache ``detector`` (under the lock), dropping the oldest versions not in use."""
        self._loaded.pop(model, None)
        self._loaded[model] = detector
        in_use = {model, self._serving_key(), *self._routing.detectors, *self._loading}
        for key in [k for k in self._loaded if k not in in_use][:max(0, len(self._loaded) - KEEP_LOADED)]:
            del self._loaded[key]

    def _watch(self, detector: Detector, limits: am.FailoverLimits,
               fallback: Detector | None = None) -> WatchedDetector:
        return WatchedDetector(detector, limits, self._out_of_service, fallback)

    def _route(self, detector: Detector) -> WatchedDetector:
        """``detector`` judged by the assignment's limits, the global primary re-running its failed batches."""
        primary = self._worker.detector
        primary = getattr(primary, "inner", primary)
        same = (primary.name, primary.version) == (detector.name, detector.version)
        return self._watch(detector, self._assignment.limits, None if same else primary)

    # -- failover -------------------------------------------------------------------------------------

    def _out_of_service(self, model: str, reason: str) -> None:
        """Stop routing cameras to ``model`` and take it out of its roles on model-control, once.
        (Also ``WatchedDetector``'s verdict callback, called on the pipeline's threads.)"""
        with self._lock:
            if model in self._failed:
                return
            self._failed.add(model)
            self._routing = self._routing.without(model)  # its cameras: the global primary, next batch on
            failovers = self._failovers(self._assignment or am.Assignment(model), model, reason)
        threading.Thread(target=self._report, args=(failovers,), name=f"failover-{model}", daemon=True).start()

    def _failovers(self, a: am.Assignment, model: str, reason: str) -> list[_Failover]:
        """Every role ``model`` has in ``a``, as an idempotent change: several workers may
        report one failure, and ``change`` may apply it again on a newer assignment."""
        by, found = self._by, []
        if a.primary == model:
            found.append(_Failover(
                "rollbacks", f"model_failover:{model}",
                lambda x: am.rollback(x, by, now_ms(), f"{model}: {reason}", failed=model),
                lambda after: f"{model} rolled back to {after.primary} by {by}: {reason}"))
        if a.canary is not None and a.canary.model == model:
            found.append(_Failover(
                "canaries_ended", f"canary_failover:{model}",
                lambda x: am.end_failed_canary(x, model, by, now_ms(), reason),
                lambda after: f"canary {model} ended by {by}, its cameras are served by {after.primary}: {reason}"))
        for cameras in [g.cameras for g in a.groups if g.primary == model]:
            found.append(_Failover(
                "group_rollbacks", f"group_failover:{cameras}:{model}",
                lambda x, c=cameras: am.rollback(x, by, now_ms(), reason, failed=model, cameras=c),
                lambda after, c=cameras: f"{model} rolled back for cameras {c} by {by}, now served by "
                                         f"{_group_primary(after, c)}: {reason}"))
        return found

    def _report(self, failovers: list[_Failover]) -> None:
        """Write each failover change; audit comes with it, an alert when it changed anything."""
        for failover in failovers:
            try:
                before, after = change(self._settings, failover.change)
            except (am.AssignmentError, KafkaException) as exc:
                log.error("cannot apply the failover %s: %s", failover.alert_id, exc)
                continue
            except Exception:  # noqa: BLE001 - failover must not take the worker down
                log.exception("failover %s failed", failover.alert_id)
                continue
            if after is not before:
                self._count(failover.counter)
                text = failover.message(after)
                log.warning("%s", text)
                publish_alert(self._settings, failover.alert_id, text)


def _group_primary(a: am.Assignment, cameras: str) -> str:
    group = a.group(cameras)
    return group.primary if group is not None else f"the global primary {a.primary}"
