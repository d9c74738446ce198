"""One camera's reader thread: open, decode, sample, encode, hand on; reconnect on faults.

A live source (RTSP, HTTP, other URLs) that ends, errors or stalls is reopened after an
exponential backoff with jitter, forever, until the worker stops. A file source ends
(or starts over when ``loop`` is set); a file that cannot be opened or read fails this
camera only. A packet or frame that cannot be decoded or encoded is skipped, counted
and logged (throttled); it never stops the reader.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
from av.container import InputContainer
from av.video.stream import VideoStream

from pipeline.codec import Codec, default_codec
from pipeline.config import CameraConfig
from pipeline.ingest.backoff import Backoff
from pipeline.ingest.base import FrameSink, OutgoingFrame, frame_message
from pipeline.ingest.clock import CaptureClock, FileClock, LiveClock
from pipeline.ingest.config import IngestConfig
from pipeline.ingest.encode import encode_frame
from pipeline.ingest.exceptions import SourceError
from pipeline.ingest.sampler import FrameSampler
from pipeline.ingest.sources import file_path, file_start_ms, open_source, redact, source_kind
from pipeline.ingest.stats import CameraStats, Throttled

log = logging.getLogger(__name__)

#: How often a reader blocked on a full queue looks at the stop flag.
_PUT_WAIT_S = 0.2


class Outcome(enum.Enum):
    EOF = "end of stream"
    ERROR = "read error"
    STALL = "stalled"
    LIMIT = "frame limit reached"
    STOPPED = "stopped"


@dataclass
class _Timeline:
    """Media time in seconds of each decoded frame, continuous across a looping file's passes."""

    time_base: Fraction
    offset_s: float = 0.0
    origin_pts: int | None = None
    step_s: float = 0.04
    last_s: float | None = None
    missing_pts: int = 0

    def time_s(self, frame: av.VideoFrame) -> float:
        if frame.pts is None:  # some streams leave frames unstamped: assume the usual spacing
            self.missing_pts += 1
            t = (self.last_s if self.last_s is not None else -self.step_s) + self.step_s
        else:
            if self.origin_pts is None:
                self.origin_pts = frame.pts
            t = float((frame.pts - self.origin_pts) * self.time_base)
            if self.last_s is not None and t > self.last_s:
                self.step_s = t - self.last_s
        self.last_s = t
        return self.offset_s + t

    def end_s(self) -> float:
        """Where the next pass of a looping file starts: one frame after the last one."""
        return self.offset_s + (self.last_s or 0.0) + self.step_s


class CameraReader:
    """Reads one camera in its own thread and puts encoded frames into ``sink``."""

    def __init__(self, camera: CameraConfig, cfg: IngestConfig, sink: FrameSink, stats: CameraStats,
                 stop: threading.Event, start_ms: int | None = None, max_frames: int | None = None,
                 codec: Codec | None = None) -> None:
        self.camera = camera
        self.cfg = cfg
        self.kind = source_kind(camera.source)
        self.stats = stats
        self._sink = sink
        self._stop = stop
        self._start_ms = start_ms if start_ms is not None else cfg.file_start_ms
        self._max_frames = max_frames
        self._codec = codec or default_codec()
        self._quality = cfg.jpeg_quality_for(camera.id)
        self._sampler = FrameSampler(camera.fps)
        self._backoff = Backoff(cfg.reconnect_initial_ms, cfg.reconnect_max_ms, cfg.reconnect_multiplier,
                                cfg.reconnect_jitter)
        self._clock: CaptureClock | None = None
        self._seq = 0
        self._loop_offset_s = 0.0
        pacing = cfg.file_pacing if cfg.file_pacing != "auto" else ("realtime" if camera.loop else "none")
        self._paced = self.kind == "file" and pacing == "realtime"
        self._pace_origin: float | None = None  # monotonic time of media time 0, when paced
        self._warn_open, self._warn_decode, self._warn_drop = Throttled(log), Throttled(log), Throttled(log)
        self.thread = threading.Thread(target=self.run, name=f"ingest-{camera.id}", daemon=True)

    @property
    def live(self) -> bool:
        return self.kind != "file"

    def run(self) -> None:
        """Thread body: read until the source ends, the frame limit, a stop, or a fatal error."""
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - whatever it is, it ends this camera only
            level = logging.ERROR if isinstance(exc, SourceError) else logging.CRITICAL
            log.log(level, "camera %s: %s", self.camera.id, exc, exc_info=not isinstance(exc, SourceError))
            self.stats.set(state="failed", error=str(exc))
        finally:
            self._sink.close(self.camera.id)

    def _run(self) -> None:
        if not self.live:
            start_ms = self._start_ms if self._start_ms is not None else file_start_ms(file_path(self.camera.source))
            self._clock = FileClock(start_ms)
        while not self._stop.is_set():
            container = self._open()
            if container is None:
                continue
            with container:
                outcome, decoded, detail = self._stream(container)
            if outcome in (Outcome.LIMIT, Outcome.STOPPED):
                self.stats.set(state="ended" if outcome is Outcome.LIMIT else "stopped")
                return
            if not self.live:
                if not self._after_file_pass(outcome, detail):
                    return
                continue
            self._wait_before_reconnect(outcome, decoded, detail)
        self.stats.set(state="stopped")

    def _open(self) -> InputContainer | None:
        """Open the source; for a live one, a failure waits out the backoff and returns None."""
        try:
            container = open_source(self.camera.source, self.cfg)
        except SourceError as exc:
            if not self.live:
                raise
            self.stats.add(open_failures=1)
            delay_ms = self._backoff.next_ms()
            self.stats.set(state="reconnecting", error=str(exc))
            self._warn_open.warning("camera %s: %s; retrying in %d ms (attempt %d)", self.camera.id, exc,
                                    delay_ms, self._backoff.attempt)
            self._stop.wait(delay_ms / 1000)
            return None
        return container

    def _after_file_pass(self, outcome: Outcome, detail: str) -> bool:
        """After a file was read to its end (or a read error): True to read it again (loop)."""
        if outcome is not Outcome.EOF:
            raise SourceError(f"{self.camera.source}: {outcome.value}: {detail}")
        if not self.camera.loop:
            log.info("camera %s: end of file %s", self.camera.id, self.camera.source)
            self.stats.set(state="ended")
            return False
        self.stats.add(loops=1)
        return True

    def _wait_before_reconnect(self, outcome: Outcome, decoded: int, detail: str) -> None:
        if decoded:
            self._backoff.reset()  # the connection worked: start again from the shortest delay
        delay_ms = self._backoff.next_ms()
        self.stats.add(reconnects=1)
        self.stats.set(state="reconnecting", error=f"{outcome.value}: {detail}" if detail else outcome.value)
        log.warning("camera %s: %s%s after %d frames; reconnecting in %d ms", self.camera.id, outcome.value,
                    f" ({detail})" if detail else "", decoded, delay_ms)
        self._stop.wait(delay_ms / 1000)

    def _configure_decoder(self, stream: VideoStream) -> None:
        ctx = stream.codec_context
        if self.cfg.decoder_threads == 1:
            ctx.thread_count = 1
        else:
            ctx.thread_type = "AUTO"
            ctx.thread_count = self.cfg.decoder_threads

    def _stream(self, container: InputContainer) -> tuple[Outcome, int, str]:
        """Read one opened source until it ends; returns (outcome, frames decoded, detail)."""
        stream = container.streams.video[0]
        self._configure_decoder(stream)
        stream_id = uuid.uuid4().hex
        # A looping file's passes follow each other on one timeline; a live session starts afresh.
        offset_s = 0.0 if self.live else self._loop_offset_s
        timeline = _Timeline(stream.time_base or Fraction(1, 90_000), offset_s=offset_s)
        if self.live:
            self._sampler.reset()
            self._clock = LiveClock(self.cfg.live_max_skew_ms)
        log.info("camera %s: opened %s (stream %s, %s %dx%d)", self.camera.id, redact(self.camera.source),
                 stream_id, stream.codec_context.name, stream.codec_context.width, stream.codec_context.height)
        decoded, last_frame_at = 0, time.monotonic()
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return Outcome.STOPPED, decoded, ""
                for frame in self._decode(packet):
                    decoded, last_frame_at = decoded + 1, time.monotonic()
                    if decoded == 1:
                        self.stats.set(state="streaming", error="")
                    outcome = self._handle(frame, stream_id, timeline)
                    if outcome is not None:
                        return outcome, decoded, ""
                if time.monotonic() - last_frame_at > self.cfg.stall_timeout_s:
                    return Outcome.STALL, decoded, f"no frame decoded for {self.cfg.stall_timeout_s:g}s"
        except av.error.ExitError:  # PyAV's read timeout interrupted a blocked read
            return Outcome.STALL, decoded, f"no data for {self.cfg.read_timeout_s:g}s"
        except (av.FFmpegError, OSError) as exc:
            return Outcome.ERROR, decoded, str(exc).replace(self.camera.source, redact(self.camera.source))
        finally:
            if not self.live:
                self._loop_offset_s = timeline.end_s()
            if timeline.missing_pts:  # usual for the first frame of an RTSP session, before RTCP sync
                log.info("camera %s: %d frames had no timestamp; spaced by the stream's frame interval",
                         self.camera.id, timeline.missing_pts)
        if not self.live and not self.camera.loop and not self._end_of_stream(stream_id, timeline):
            return Outcome.STOPPED, decoded, ""
        return Outcome.EOF, decoded, ""

    def _end_of_stream(self, stream_id: str, timeline: _Timeline) -> bool:
        """Tell downstream the file ended, so its open windows become final now (False if stopped).

        The marker is a Frame message like the others (counted as sampled and sent), without an image.
        """
        assert self._clock is not None
        item = frame_message(self.camera.id, stream_id, self._seq, self._clock.capture_ts_ms(timeline.end_s()),
                             None, self._codec)
        self._seq += 1
        if not self._put(item):
            return False
        self.stats.add(frames_sampled=1)
        return True

    def _decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            self.stats.add(decode_errors=1)
            self._warn_decode.warning("camera %s: skipped an undecodable packet (pts %s): %s (%d so far)",
                                      self.camera.id, packet.pts, exc, self.stats.decode_errors)
            return []
        self.stats.add(frames_read=len(frames))
        return frames

    def _handle(self, frame: av.VideoFrame, stream_id: str, timeline: _Timeline) -> Outcome | None:
        """Sample, encode and hand on one decoded frame; an outcome when reading must end."""
        t_s = timeline.time_s(frame)
        if not self._sampler.offer(t_s):
            return None
        assert self._clock is not None
        capture_ts_ms = self._clock.capture_ts_ms(t_s)
        started = time.perf_counter()
        try:
            image = encode_frame(frame, self._quality, self.camera.max_width)
        except (ValueError, av.FFmpegError, cv2.error) as exc:
            self.stats.add(decode_errors=1)
            self._warn_decode.warning("camera %s: skipped a frame that could not be encoded: %s", self.camera.id, exc)
            return None
        encode_ms = (time.perf_counter() - started) * 1000
        if self._paced and not self._wait_until(t_s):
            return Outcome.STOPPED
        item = frame_message(self.camera.id, stream_id, self._seq, capture_ts_ms, image, self._codec,
                             start_time_ns=time.time_ns() - int(encode_ms * 1e6))  # the span covers the encode
        self._seq += 1
        resyncs = getattr(self._clock, "resyncs", 0)
        self.stats.add(encode_ms_total=encode_ms)
        self.stats.set(last_capture_ts_ms=capture_ts_ms, clock_resyncs=resyncs)
        if not self._put(item):
            return Outcome.STOPPED
        self.stats.add(frames_sampled=1)
        if self._max_frames is not None and self._seq >= self._max_frames:
            return Outcome.LIMIT
        return None

    def _wait_until(self, t_s: float) -> bool:
        """Realtime pacing of a file: sleep until media time ``t_s``; False if stopped meanwhile."""
        now = time.monotonic()
        if self._pace_origin is None:
            self._pace_origin = now - t_s
        delay_s = self._pace_origin + t_s - now
        return delay_s <= 0 or not self._stop.wait(delay_s)

    def _put(self, item: OutgoingFrame) -> bool:
        """Hand ``item`` to the sink, blocking while it is full; False if stopped meanwhile."""
        while True:
            try:
                dropped = self._sink.put(self.camera.id, item, timeout_s=_PUT_WAIT_S)
                break
            except queue.Full:
                if self._stop.is_set():
                    return False
        if dropped is not None:
            self.stats.add(frames_dropped=1)
            self._warn_drop.warning("camera %s: queue full, dropped the oldest waiting frame (seq %d; %d so far)",
                                    self.camera.id, dropped.seq, self.stats.frames_dropped)
        return True
