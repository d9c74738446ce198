"""OpenTelemetry metrics of an ingest worker, read from its ``CameraStats`` and queue (no double counting)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline import telemetry

if TYPE_CHECKING:
    from pipeline.ingest.worker import IngestWorker

METER = "camcount.ingest"
#: CameraStats field -> (instrument name, description); all monotonic counters per camera.
COUNTERS = {
    "frames_read": ("camcount.ingest.frames_in", "Frames decoded from the source"),
    "frames_sent": ("camcount.ingest.frames_out", "Frames the broker acknowledged"),
    "frames_dropped": ("camcount.ingest.frames_dropped", "Frames dropped because the camera's queue was full"),
    "frames_failed": ("camcount.ingest.frames_failed", "Frames the broker did not acknowledge"),
    "decode_errors": ("camcount.ingest.decode_errors", "Packets or frames that could not be decoded or encoded"),
    "reconnects": ("camcount.ingest.reconnects", "Source sessions after the first (reconnects)"),
}


def register(worker: "IngestWorker") -> None:
    """Observable instruments over ``worker``'s counters, labelled by ``camera_id``."""
    for field, (name, description) in COUNTERS.items():
        telemetry.observe(METER, name, "counter", worker,
                          lambda w, f=field: [(getattr(s, f), {"camera_id": c}) for c, s in w.stats.items()],
                          unit="{frame}", description=description)
    telemetry.observe(METER, "camcount.ingest.queue_depth", "gauge", worker,
                      lambda w: [(w.queue_depth(c), {"camera_id": c}) for c in w.stats],
                      unit="{frame}", description="Frames queued between a camera's reader and the producer")
