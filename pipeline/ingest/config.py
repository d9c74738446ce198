"""The ``ingest:`` section of the config file: encoding, buffering, producer and fault settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config import Section

WhenFull = Literal["block", "drop_oldest"]


class CameraIngestConfig(Section):
    """Per-camera overrides of ``ingest:`` settings, under ``ingest.cameras.<camera id>``."""

    jpeg_quality: int | None = Field(None, ge=1, le=100)
    when_full: WhenFull | None = None


class IngestConfig(Section):
    #: JPEG quality 1..100: higher keeps more detail for the detector, at more bytes per frame.
    jpeg_quality: int = Field(85, ge=1, le=100)
    #: Encoded frames a camera may have waiting for the producer. Raising it rides out longer
    #: broker hiccups at the cost of memory (frames x ~50-300 KB) and of staler frames.
    queue_frames: int = Field(16, ge=1)
    #: What a reader does when its queue is full: ``block`` (backpressure: the source is read
    #: more slowly, nothing is lost) or ``drop_oldest`` (freshness: the oldest waiting frame is
    #: dropped, counted and logged; seq then has a gap).
    when_full: WhenFull = "block"
    #: JPEG does not compress further; lz4 costs little if the network is the bottleneck.
    compression: Literal["none", "lz4"] = "none"
    linger_ms: int = Field(10, ge=0)
    batch_bytes: int = Field(1_000_000, ge=1024)
    #: librdkafka's own send buffer: a bound, so a slow broker blocks readers instead of
    #: filling memory. Frames beyond it wait in the per-camera queues.
    producer_buffer_kbytes: int = Field(64 * 1024, ge=1)
    producer_buffer_messages: int = Field(10_000, ge=1)
    #: A frame the broker has not acknowledged within this time is counted as failed.
    delivery_timeout_ms: int = Field(120_000, ge=1000)
    #: How long a graceful stop waits for the broker to acknowledge frames in flight.
    flush_timeout_s: float = Field(30.0, gt=0)
    #: How long a stop waits for readers to leave a blocking read before giving up on them.
    stop_timeout_s: float = Field(15.0, gt=0)
    #: Reconnect delays: ``initial * multiplier**attempt``, capped, minus up to ``jitter`` of it
    #: at random so many cameras behind one failed bridge don't reconnect in lockstep.
    reconnect_initial_ms: int = Field(500, ge=1)
    reconnect_max_ms: int = Field(30_000, ge=1)
    reconnect_multiplier: float = Field(2.0, ge=1.0)
    reconnect_jitter: float = Field(0.5, ge=0.0, le=1.0)
    #: Opening a network source (connect, handshake, first probe) may take this long.
    open_timeout_s: float = Field(10.0, gt=0)
    #: A network read blocked this long means the source is gone: reconnect.
    read_timeout_s: float = Field(10.0, gt=0)
    #: Packets arriving but no frame decoded for this long (a stalled or garbage stream): reconnect.
    stall_timeout_s: float = Field(15.0, gt=0)
    #: Decoder threads per camera; 0 lets FFmpeg choose. 1 keeps one core per camera at most,
    #: which is what a worker with many cameras wants.
    decoder_threads: int = Field(1, ge=0)
    #: How fast file sources are read: ``realtime`` paces frames by presentation time (a camera
    #: simulator), ``none`` as fast as decoding allows (backfills, tests); ``auto`` is realtime
    #: for looping files (so a demo loop does not flood the topic) and ``none`` otherwise.
    file_pacing: Literal["auto", "realtime", "none"] = "auto"
    #: Capture time of a file's first frame (epoch ms); unset means the file's mtime, floored
    #: to the second. The same file and start give the same capture_ts_ms and seq on every run.
    file_start_ms: int | None = Field(None, ge=0)
    #: Live sources stamp frames with wall time at the first frame + media time; when the two
    #: drift apart by more than this, the clock re-anchors to wall time.
    live_max_skew_ms: int = Field(2000, ge=1)
    #: Interval of the per-camera counters line in the log; 0 turns it off.
    stats_interval_s: float = Field(30.0, ge=0)
    #: Per-camera overrides, by camera id.
    cameras: dict[str, CameraIngestConfig] = Field(default_factory=dict)

    def jpeg_quality_for(self, camera_id: str) -> int:
        override = self.cameras.get(camera_id)
        return override.jpeg_quality if override and override.jpeg_quality is not None else self.jpeg_quality

    def when_full_for(self, camera_id: str) -> WhenFull:
        override = self.cameras.get(camera_id)
        return override.when_full if override and override.when_full is not None else self.when_full
