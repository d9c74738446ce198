"""The inference worker: a consumer-group member reading ``frames``, writing ``detections``.

The poll loop (this module, the main thread) owns the Kafka consumer: it validates each
frame, feeds the micro-batcher of ``stages.Pipeline``, pauses its partitions while the
pipeline is full and resumes them once it drained, and stores offsets for commit.

Delivery is at-least-once. An input offset is stored only once the broker acknowledged
the detections (or the dead-letter copy) of that frame and of every earlier frame of its
partition (``offsets.OffsetTracker``); a crash or a revoked partition replays, never loses.

Each camera's frames run on the detector ``_detector_for`` names: ``detector`` (the global
primary), or with ``live`` (``pipeline.shadow.live.LiveModels``, which follows
model-control) the version the assignment routes the camera to once it is loaded: its
camera group's primary, or the canary for the cameras in the canary share. ``live``
replaces ``detector`` between batches once a newly promoted version is loaded, and
``_accept`` hands it every valid frame for mirroring a deterministic sample to
``frames.shadow``. ``pipeline.inference.build`` makes a worker from the settings.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pipeline.codec import default_codec
from pipeline.config import Settings
from pipeline.exceptions import CamcountError, DecodeError
from pipeline.inference.base import Detector
from pipeline.inference.batcher import BlockingBatcher, monotonic_ms
from pipeline.inference import metrics as inference_metrics
from pipeline.inference.frames import FrameItem, FrameLimits, parse_frame
from pipeline.inference.offsets import OffsetTracker, Token
from pipeline.inference.sink import KafkaFrameSink
from pipeline.inference.stages import Pipeline
from pipeline.inference.stats import ClickHouseStatsWriter, StatsReporter
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config, fetch_limits, producer_config

if TYPE_CHECKING:
    from pipeline.shadow.live import LiveModels

log = logging.getLogger(__name__)

TP = tuple[str, int]
_FULL_WAIT_S = 0.005  # poll-loop tick while the pipeline is full or paused
_IDLE_POLL_S = 0.05  # longest poll while waiting for input (bounds stop/offset latency)


class _WorkerLog(logging.LoggerAdapter):
    """Prefixes each line with the worker id (several workers may share a process or log)."""

    def process(self, msg, kwargs):
        return f"[{self.extra['worker']}] {msg}", kwargs


class WorkerFailed(CamcountError):
    """A stage crashed or the broker refused output: stopped without storing past it."""


class InferenceWorker:
    """One model, one consumer-group member. ``run()`` blocks until ``stop()`` or an exit
    condition (``max_frames`` finished, ``idle_exit_s`` without input) and returns totals."""

    def __init__(self, settings: Settings, detector: Detector, *, group_id: str | None = None,
                 worker_id: str | None = None, input_topic: str = topics.FRAMES,
                 output_topic: str = topics.DETECTIONS, max_frames: int | None = None,
                 idle_exit_s: float | None = None, write_stats: bool = True,
                 live: "LiveModels | None" = None) -> None:
        cfg = settings.inference
        self.cfg = cfg
        self.detector = detector
        self.worker_id = worker_id or cfg.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.group_id = group_id or topics.name(settings, cfg.group_id)  # prefixed like the topics
        self.log = _WorkerLog(log, {"worker": self.worker_id})
        self._input_topic = topics.name(settings, input_topic)
        self._output_topic = topics.name(settings, output_topic)
        self._max_frames, self._idle_exit_s = max_frames, idle_exit_s
        self._codec = default_codec()
        self._live = live  # follows model-control, mirrors to frames.shadow (primary role)
        self._limits = FrameLimits(cfg.max_frame_bytes, cfg.max_width, cfg.max_height)
        self.lag = inference_metrics.ConsumerLag()
        self._consumer = Consumer(consumer_config(
            settings.kafka, self.group_id,
            **(fetch_limits(cfg.consumer_queue_kbytes) | self.lag.config() | cfg.consumer_overrides)))
        self._tracker = OffsetTracker()
        self.stats = StatsReporter(
            self.worker_id, cfg.stats_interval_ms / 1000,
            ClickHouseStatsWriter(settings.clickhouse) if write_stats else None,
            lambda: (self.detector.name, self.detector.version), cfg.stats_backlog_rows)
        self._batcher: BlockingBatcher[FrameItem] = BlockingBatcher(
            cfg.max_batch, cfg.max_wait_ms, cfg.max_pending_frames)
        self._sink = KafkaFrameSink(
            Producer(producer_config(settings.kafka)), self._codec, topics.name(settings, output_topic),
            topics.name(settings, topics.dlq(input_topic)), self._finish, self.stats, self.log)
        self._pipeline = Pipeline(
            batcher=self._batcher, detector_for=self._detector_for, sink=self._sink,
            stats=self.stats, limits=self._limits, max_batch=cfg.max_batch,
            decode_threads=cfg.decode_threads, model_runs=cfg.model_runs, helper_nice=cfg.helper_nice,
            prepared_queue_batches=cfg.prepared_queue_batches,
            output_queue_batches=cfg.output_queue_batches, inject_delay_ms=cfg.inject_delay_ms)
        self._overflow: deque[Message] = deque()  # polled, not yet accepted (batcher full)
        self._assigned: frozenset[TP] = frozenset()  # replaced, never mutated: safe to read anywhere
        self._paused = False
        self._paused_at_s = 0.0
        self._full_since_s: float | None = None
        self._paused_set: set[TP] = set()  # partitions paused now
        self._stop = threading.Event()
        self._pipeline_done = False
        self._failure: BaseException | None = None
        self._last_activity_s: float | None = None  # idle time counts from the first assignment
        #: Monotonic times of the first polled frame and of the last finished one (benchmarks).
        self.first_polled_s: float | None = None
        self.last_finished_s: float | None = None
        self.joined = False  # a first assignment (maybe empty) arrived: a member of the group
        inference_metrics.register(self)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def assignment(self) -> set[TP]:
        """The (topic, partition)s this worker owns now."""
        return set(self._assigned)

    def ready(self) -> bool:
        """Readiness: model loaded (it is, once constructed), in the group, not stopping or failed."""
        return self.joined and not self._stop.is_set() and self._failure is None

    def _detector_for(self, camera_id: str) -> Detector:
        """The version serving ``camera_id``: its group primary or the canary once loaded
        (``live``, after ``assignment.model_for_camera``), else ``detector``."""
        routed = self._live.detector_for(camera_id) if self._live is not None else None
        return self.detector if routed is None else routed

    def queue_depth(self) -> int:
        return len(self._batcher) + len(self._overflow)

    def in_flight(self) -> int:
        return self._tracker.pending()

    def stop(self) -> None:
        """Ask ``run`` to finish in-flight frames, flush, commit and return (signal-safe)."""
        self._stop.set()

    def run(self) -> dict[str, int]:
        self.log.info("serving %s:%s on %s -> %s (group %s)", self.detector.name, self.detector.version,
                      self._input_topic, self._output_topic, self.group_id)
        self._consumer.subscribe([self._input_topic], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._pipeline.start()
        self.stats.start()
        if self._live is not None:
            self._live.start(self)
        try:
            while not self._stop.is_set():
                self._poll()
                self._feed()
                self._backpressure()
                self._store_acked()
                self._check()
        finally:
            self._shutdown()
        if self._failure is not None:
            raise WorkerFailed(f"inference worker stopped: {self._failure}") from self._failure
        return self.stats.totals()

    def _check(self) -> None:
        failure = self._failure or self._pipeline.failure or self._sink.failure
        if failure is not None:
            self._failure = failure
            self._stop.set()
            return
        if self._max_frames is not None and self.stats.totals().get("finished", 0) >= self._max_frames:
            self.log.info("finished %d frames (--max-frames): stopping", self._max_frames)
            self._stop.set()
        elif self._idle_exit_s is not None and self._idle():
            self.log.info("no input for %.1f s and nothing in flight (--idle-exit-s): stopping",
                          self._idle_exit_s)
            self._stop.set()

    def _idle(self) -> bool:
        if self._last_activity_s is None:
            return False  # not in the group yet (a restart may wait for a dead member's session)
        if self._overflow or self._tracker.pending():
            self._last_activity_s = time.monotonic()
            return False
        return time.monotonic() - self._last_activity_s >= self._idle_exit_s

    def _shutdown(self) -> None:
        timeout_s = self.cfg.shutdown_timeout_ms / 1000
        deadline = time.monotonic() + timeout_s
        if self._failure is None:
            if not self._pipeline.close(timeout_s):
                self.log.warning("in-flight frames not finished in %.0f s; they will be replayed", timeout_s)
        else:
            self._pipeline.abort()
        self._pipeline_done = True
        left = self._sink.flush(max(0.0, deadline - time.monotonic()))
        if left:
            self.log.warning("%d messages not acknowledged at shutdown; their frames will be replayed", left)
        self._store_acked()
        self._commit(self._assigned)
        self._consumer.close()
        if self._live is not None:
            self._live.stop()
        self.stats.stop()
        self.log.info("stopped: %s", self.stats.totals())

    # -- polling and admission -----------------------------------------------------------------

    def _poll(self) -> None:
        room = self.cfg.max_pending_frames - len(self._batcher) - len(self._overflow)
        if room <= 0 and not self._paused:
            time.sleep(_FULL_WAIT_S)  # librdkafka's bounded prefetch queue holds the input
            return
        msg = self._consumer.poll(_FULL_WAIT_S if self._paused else _IDLE_POLL_S)
        if msg is None:
            return
        if self.first_polled_s is None:
            self.first_polled_s = time.monotonic()
        msgs = [msg]
        if room > 1:
            msgs += self._consumer.consume(room - 1, 0)  # what is already fetched, no waiting
        for m in msgs:
            if m.error() is not None:
                self._on_error(m.error())
            else:
                self._overflow.append(m)
        self._last_activity_s = time.monotonic()

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        self.log.warning("consumer: %s", error)

    def _feed(self) -> None:
        """Move polled messages, in order, into the batcher while it has room."""
        while self._overflow and len(self._batcher) < self.cfg.max_pending_frames:
            self._accept(self._overflow.popleft())

    def _accept(self, msg: Message) -> None:
        token = self._tracker.add(msg.topic(), msg.partition(), msg.offset())
        try:
            frame = parse_frame(msg.value(), self._codec, self._limits)
        except DecodeError as exc:
            self._sink.dead_letter_message(msg.value(), msg.key(), msg.headers(), token, exc)
            return
        if self._too_old(frame):
            self.stats.count("skipped")
            self._finish(token)
            return
        if self._live is not None:
            self._live.mirror(frame, msg.key(), msg.value(), msg.headers())
        item = FrameItem(token, msg.key(), msg.headers(), msg.value(), frame, monotonic_ms())
        self._batcher.put(item)  # has room: only this thread puts

    def _too_old(self, frame: dict) -> bool:
        if self.cfg.max_lag_ms is None or frame.get("end_of_stream", False):
            return False
        return time.time() * 1000 - frame["capture_ts_ms"] > self.cfg.max_lag_ms

    # -- backpressure -------------------------------------------------------------------------

    def _backpressure(self) -> None:
        """Pause when the pipeline stayed full for ``pause_after_ms``; resume once it drained.

        A short stall needs no pause: the poll loop just stops polling and librdkafka's
        prefetch queue (bounded by ``consumer_queue_kbytes``) holds the input, ready at once.
        A pause drops that queue, and librdkafka re-fetches up to a second after resume.
        """
        in_flight = self._tracker.pending() + len(self._overflow)
        self.stats.gauge_max("max_in_flight_frames", in_flight)
        pending = len(self._batcher) + len(self._overflow)
        if self._paused:
            if not self._overflow and len(self._batcher) <= self.cfg.resume_pending_frames:
                self._resume(in_flight)
            elif self._assigned - self._paused_set:
                self._pause_partitions(self._assigned)  # newly assigned while paused
        elif pending < self.cfg.max_pending_frames:
            self._full_since_s = None
        elif self._full_since_s is None:
            self._full_since_s = time.monotonic()
        elif time.monotonic() - self._full_since_s >= self.cfg.pause_after_ms / 1000:
            self._pause(in_flight)

    def _pause(self, in_flight: int) -> None:
        self._paused, self._paused_at_s = True, time.monotonic()
        self._pause_partitions(self._assigned)
        self.stats.count("paused")
        self.log.info("paused %d partitions: pipeline full, %d frames in flight",
                      len(self._assigned), in_flight)

    def _pause_partitions(self, partitions: set[TP]) -> None:
        new = partitions - self._paused_set
        if new:
            self._consumer.pause([TopicPartition(t, p) for t, p in new])
            self._paused_set |= new

    def _resume(self, in_flight: int) -> None:
        self._paused, self._full_since_s = False, None
        resume, self._paused_set = self._paused_set & self._assigned, set()
        if resume:
            self._consumer.resume([TopicPartition(t, p) for t, p in resume])
        self.stats.count("resumed")
        self.log.info("resumed %d partitions after %.2f s paused: %d frames in flight",
                      len(self._assigned), time.monotonic() - self._paused_at_s, in_flight)

    # -- offsets and rebalances ---------------------------------------------------------------

    def _store_acked(self) -> None:
        positions = self._tracker.take_committable()
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items() if (t, p) in self._assigned]
        if offsets:
            try:
                self._consumer.store_offsets(offsets=offsets)
            except KafkaException as exc:  # a partition revoked meanwhile: its new owner replays
                self.log.debug("store_offsets: %s", exc)

    def _commit(self, partitions: set[TP]) -> None:
        offsets = [TopicPartition(t, p, pos) for t, p in partitions
                   if (pos := self._tracker.position(t, p)) is not None]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self.log.warning("commit of %s failed: %s (the frames will be replayed)", offsets, exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        self._last_activity_s = time.monotonic()
        self.joined = True
        self.log.info("assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish (up to a timeout) what was polled from these partitions, commit, forget."""
        keys = {(p.topic, p.partition) for p in partitions}
        self._overflow = deque(m for m in self._overflow if (m.topic(), m.partition()) not in keys)
        in_flight = self._tracker.pending(keys)
        deadline = time.monotonic() + self.cfg.revoke_drain_timeout_ms / 1000
        while (self._tracker.pending(keys) and not self._pipeline_done and self._failure is None
               and self._pipeline.failure is None and self._sink.failure is None
               and time.monotonic() < deadline):
            time.sleep(0.005)
        left = self._tracker.pending(keys)
        self._store_acked()
        self._commit(keys)
        self._tracker.forget(keys)
        self._unassigned(keys)
        self._last_activity_s = time.monotonic()
        self.log.info("revoked %s: %d frames in flight, %d finished before giving it up, %d left",
                      sorted(f"{t}[{p}]" for t, p in keys), in_flight, in_flight - left, left)

    def _unassigned(self, keys: set[TP]) -> None:
        # librdkafka keeps a partition's pause flag across reassignment: clear it on the way out.
        paused = keys & self._paused_set
        if paused:
            self._consumer.resume([TopicPartition(t, p) for t, p in paused])
        self._paused_set -= keys
        self._assigned -= keys

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(p.topic, p.partition) for p in partitions}
        self._overflow = deque(m for m in self._overflow if (m.topic(), m.partition()) not in keys)
        self._tracker.forget(keys)
        self._unassigned(keys)
        self.log.warning("lost %s: their in-flight frames will be replayed by the new owner", sorted(keys))

    # -- finished frames ------------------------------------------------------------------

    def _finish(self, token: Token) -> None:
        if self._tracker.done(token):
            self.stats.count("finished")
            self.last_finished_s = time.monotonic()
