"""Loaded model versions, the micro-batching thread in front of each, and which version
answers a request that names none.

Every HTTP request letterboxes its image in its own worker thread (``prepare``, in
parallel across requests, as the stream worker's thread pool does) and puts it into its
model's ``BlockingBatcher`` (the batcher the stream worker uses); one detector thread per
model version takes batches of up to ``max_batch`` images, closed after ``max_wait_ms``,
stacks them, runs the model once per batch, decodes the boxes and completes each
request's future. ``max_pending`` bounds the queue: a full queue
answers 503 instead of growing memory.

``ModelResolver`` is the seam for model assignment: the static one answers with
``models.primary`` from the config; a follower of the ``model-control`` topic can
implement the same method so promote and rollback apply here without a restart.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Protocol

import numpy as np

from pipeline.inference.base import Detector, PreparedBatch
from pipeline.inference.batcher import BlockingBatcher, monotonic_ms
from pipeline.serving.exceptions import NotFound, Unavailable
from pipeline.serving.metrics import ServingMetrics
from pipeline.shadow.assignment import parse_model_key

if TYPE_CHECKING:
    from pipeline.config import Settings

log = logging.getLogger(__name__)


class ModelResolver(Protocol):
    """Which version of a model answers when a request names none."""

    def default_version(self, name: str) -> str | None:
        """The assigned version of ``name``; None when ``name`` has no assignment."""
        ...


class StaticResolver:
    """The primary from the config (``models.primary``), fixed for the process's life."""

    def __init__(self, primary: str) -> None:
        self.name, self.version = parse_model_key(primary)

    def default_version(self, name: str) -> str | None:
        return self.version if name == self.name else None


@dataclass
class Job:
    prepared: PreparedBatch  # one letterboxed image
    future: Future = field(default_factory=Future)
    enqueued_ms: int = field(default_factory=monotonic_ms)


class ModelRunner:
    """One detector behind a ``BlockingBatcher``, run by its own thread."""

    def __init__(self, detector: Detector, max_batch: int, max_wait_ms: int,
                 max_pending: int, metrics: ServingMetrics) -> None:
        self.detector = detector
        self.name, self.version = detector.name, detector.version
        self.class_names: tuple[str, ...] = tuple(getattr(detector, "class_names", ()))
        self._batcher: BlockingBatcher[Job] = BlockingBatcher(
            max_batch, max_wait_ms, max(max_pending, max_batch))
        self._metrics = metrics
        self._thread = threading.Thread(
            target=self._loop, name=f"serve-{self.name}:{self.version}", daemon=True)
        self._failed: BaseException | None = None
        self._max_batch = max_batch
        self._buffer: np.ndarray | None = None  # the batch tensor, reused

    @property
    def ready(self) -> bool:
        return self._thread.is_alive() and self._failed is None

    @property
    def pending(self) -> int:
        """Images queued and not yet taken into a batch."""
        return len(self._batcher)

    def start(self) -> None:
        self._thread.start()

    def prepare(self, image: np.ndarray) -> PreparedBatch:
        """Letterbox one BGR image for this model (thread-safe: run it in request threads)."""
        return self.detector.preprocess([image])

    def submit(self, prepared: PreparedBatch) -> Future:
        """Queue one prepared image; its future gets the ``Detections``. 503 when full."""
        if not self.ready:
            raise Unavailable(f"model {self.name} version {self.version} is not ready")
        job = Job(prepared)
        if not self._batcher.put(job, timeout_s=0):
            raise Unavailable(
                f"model {self.name} version {self.version} is busy: "
                f"{len(self._batcher)} requests queued; retry later")
        return job.future

    def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new images, finish the queued ones, stop the thread."""
        self._batcher.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        try:
            while (batch := self._batcher.get_batch()) is not None:
                # A request whose client went away was cancelled: skip its image.
                jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
                if jobs:
                    self._run(jobs)
        except BaseException as exc:  # noqa: BLE001 - the thread must not die silently
            self._failed = exc
            log.exception("detector thread of %s:%s stopped", self.name, self.version)
            raise

    def _run(self, jobs: list[Job]) -> None:
        start_ms = monotonic_ms()
        waits_s = [(start_ms - job.enqueued_ms) / 1000 for job in jobs]
        self._metrics.batch(self.name, self.version, len(jobs), waits_s)
        try:
            results = self.detector.postprocess(self.detector.run(self._stack(jobs)))
        except Exception as exc:  # noqa: BLE001 - fail this batch's requests, keep serving
            log.exception("batch of %d on %s:%s failed", len(jobs), self.name, self.version)
            for job in jobs:
                job.future.set_exception(exc)
            return
        for job, detections in zip(jobs, results):
            job.future.set_result(detections)

    def _stack(self, jobs: list[Job]) -> PreparedBatch:
        """The jobs' rows as one batch tensor (a reused buffer) with their frame metas."""
        metas = tuple(meta for job in jobs for meta in job.prepared.metas)
        if len(jobs) == 1:
            return jobs[0].prepared
        rows = [job.prepared.tensor for job in jobs]
        if self._buffer is None or self._buffer.shape[1:] != rows[0].shape[1:]:
            self._buffer = np.empty((self._max_batch, *rows[0].shape[1:]), rows[0].dtype)
        return PreparedBatch(np.concatenate(rows, out=self._buffer[: len(jobs)]), metas)


class ModelRepository:
    """The loaded versions by name, and the resolver choosing a default version."""

    def __init__(self, runners: Iterable[ModelRunner], resolver: ModelResolver) -> None:
        self._runners = {(r.name, r.version): r for r in runners}
        self.resolver = resolver

    def names(self) -> list[str]:
        return sorted({name for name, _ in self._runners})

    def versions(self, name: str) -> list[str]:
        found = sorted(v for n, v in self._runners if n == name)
        if not found:
            raise NotFound(f"unknown model {name!r} (served: {', '.join(self.names()) or 'none'})")
        return found

    def get(self, name: str, version: str | None = None) -> ModelRunner:
        """The runner answering ``name`` (at ``version``, else the assigned one)."""
        versions = self.versions(name)
        if version is None:
            version = self.resolver.default_version(name)
            if version is None:
                if len(versions) > 1:
                    raise NotFound(f"model {name!r} has no assigned version; name one of {versions}")
                version = versions[0]
            elif version not in versions:
                raise Unavailable(f"model {name!r}: assigned version {version!r} is not loaded")
        runner = self._runners.get((name, version))
        if runner is None:
            raise NotFound(f"unknown version {version!r} of model {name!r} (versions: {versions})")
        return runner

    @property
    def ready(self) -> bool:
        return bool(self._runners) and all(r.ready for r in self._runners.values())

    def start(self) -> None:
        for runner in self._runners.values():
            runner.start()

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()


def load_repository(settings: "Settings", metrics: ServingMetrics,
                    resolver: ModelResolver | None = None) -> ModelRepository:
    """Load and warm up the configured model versions (default: the whole registry)."""
    from pipeline.inference.detector import load_detector
    from pipeline.inference.registry import registry_from_settings

    cfg, inference = settings.serving, settings.inference
    max_batch = cfg.max_batch or inference.max_batch
    max_wait_ms = cfg.max_wait_ms if cfg.max_wait_ms is not None else inference.max_wait_ms
    registry = registry_from_settings(settings)
    keys = cfg.models if cfg.models is not None else registry.keys()
    if settings.models.primary not in keys:
        log.warning("models.primary %s is not among the served versions %s", settings.models.primary, keys)
    runners = []
    for key in keys:
        name, version = parse_model_key(key)
        detector = load_detector(registry, name, version, inference.session, inference.decode, metrics)
        detector.warmup(max_batch)
        runners.append(ModelRunner(detector, max_batch, max_wait_ms, cfg.max_pending_requests, metrics))
        log.info("serving %s:%s (max_batch %d, max_wait_ms %d)", name, version, max_batch, max_wait_ms)
    return ModelRepository(runners, resolver or StaticResolver(settings.models.primary))
