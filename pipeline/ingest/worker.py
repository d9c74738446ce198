"""An ingest worker: one reader thread per camera, one producer draining their bounded queues.

The producer runs in the thread that calls ``run()`` (the main thread under the CLI), so
signal handlers only need to call ``stop()``. A stop lets the readers finish the frame
in hand, sends everything already queued, and waits for the broker's acknowledgements
(``flush_timeout_s``); what is still unacknowledged then is counted as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from pipeline.config import CameraConfig, Settings
from pipeline.exceptions import ConfigError
from pipeline.ingest.base import OutgoingFrame
from pipeline.ingest import metrics as ingest_metrics
from pipeline.ingest.framequeue import FrameQueue
from pipeline.ingest.publisher import FramePublisher
from pipeline.ingest.reader import CameraReader
from pipeline.ingest.stats import CameraStats

log = logging.getLogger(__name__)


def select_cameras(settings: Settings, camera_ids: Sequence[str] | None) -> list[CameraConfig]:
    """The cameras to serve (all when ``camera_ids`` is empty); unknown ids are a ``ConfigError``."""
    known = {c.id for c in settings.cameras}
    stray = sorted(set(settings.ingest.cameras) - known)
    if stray:
        raise ConfigError(f"ingest.cameras.{stray[0]}: no camera {stray[0]!r} under 'cameras:'")
    cameras = [settings.camera(i) for i in dict.fromkeys(camera_ids)] if camera_ids else list(settings.cameras)
    if not cameras:
        raise ConfigError("cameras: no cameras to ingest (add some to the config file)")
    return cameras


class IngestWorker:
    """Serves a group of cameras from one process until stopped or every source has ended."""

    def __init__(self, settings: Settings, camera_ids: Sequence[str] | None = None, start_ms: int | None = None,
                 max_frames: int | None = None) -> None:
        self.settings = settings
        self.cfg = settings.ingest
        cameras = select_cameras(settings, camera_ids)
        self.stats = {c.id: CameraStats(c.id) for c in cameras}
        self._queue: FrameQueue[OutgoingFrame] = FrameQueue()
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        for cam in cameras:
            self._queue.add_camera(cam.id, self.cfg.queue_frames, self.cfg.when_full_for(cam.id))
        self.readers = [
            CameraReader(cam, self.cfg, self._queue, self.stats[cam.id], self._stop, start_ms, max_frames)
            for cam in cameras
        ]
        self._publisher: FramePublisher | None = None
        ingest_metrics.register(self)

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> dict[str, dict[str, object]]:
        """Run until stopped or every reader has ended; returns each camera's final counters."""
        self._publisher = FramePublisher(self.settings, self.cfg, self.stats)
        log.info("ingest: %d cameras -> %s", len(self.readers), self._publisher.topic)
        for reader in self.readers:
            reader.thread.start()
        try:
            self._pump(self._publisher)
        finally:
            self._stop.set()
            self._shutdown(self._publisher)
        return self.snapshot()

    def ready(self) -> bool:
        """Readiness: the producer exists, no stop was asked, and a camera is streaming (or its file done)."""
        return (self._publisher is not None and not self._stop.is_set()
                and any(s.state in ("streaming", "ended") for s in self.stats.values()))

    def queue_depth(self, camera_id: str) -> int:
        return self._queue.depth(camera_id)

    def snapshot(self) -> dict[str, dict[str, object]]:
        return {camera_id: stats.snapshot() for camera_id, stats in self.stats.items()}

    def _pump(self, publisher: FramePublisher) -> None:
        next_report = time.monotonic() + self.cfg.stats_interval_s
        while not self._queue.finished():
            if self._abandon():
                log.warning("ingest: readers still busy %.0fs after stop: %s", self.cfg.stop_timeout_s,
                            ", ".join(r.camera.id for r in self.readers if r.thread.is_alive()))
                return
            item = self._queue.get(timeout_s=0.1)
            if item is None:
                publisher.poll(0)
            elif not publisher.publish(item, give_up=self._abandon):
                self._count_unsent([item])
            if self.cfg.stats_interval_s and time.monotonic() >= next_report:
                self._report()
                next_report = time.monotonic() + self.cfg.stats_interval_s

    def _abandon(self) -> bool:
        """True once a stop was asked for more than ``stop_timeout_s`` ago."""
        if not self._stop.is_set():
            return False
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.cfg.stop_timeout_s
            log.info("ingest: stopping; sending what is queued")
        return time.monotonic() > self._stop_deadline

    def _shutdown(self, publisher: FramePublisher) -> None:
        for reader in self.readers:
            reader.thread.join(timeout=1.0)
        leftover = []
        while (item := self._queue.get(timeout_s=0)) is not None:
            leftover.append(item)
        self._count_unsent(leftover)
        publisher.close(self.cfg.flush_timeout_s)
        self._report()

    def _count_unsent(self, items: list[OutgoingFrame]) -> None:
        for item in items:
            self.stats[item.camera_id].add(frames_failed=1)
        if items:
            log.error("ingest: %d queued frames were not sent before the stop timed out", len(items))

    def _report(self) -> None:
        for camera_id, snap in self.snapshot().items():
            log.info("camera %s: %s read, %s sampled, %s sent, %s dropped, %s failed, %s decode errors, "
                     "%s reconnects, %.2f ms/encode, state %s", camera_id, snap["frames_read"],
                     snap["frames_sampled"], snap["frames_sent"], snap["frames_dropped"], snap["frames_failed"],
                     snap["decode_errors"], snap["reconnects"], snap["encode_ms_mean"], snap["state"])
