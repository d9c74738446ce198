"""The worker's pipeline after the poll loop: prepare -> run -> output.

    batcher ──► [prepare] ──run_q──► [dispatch] ──out_q──► [output] ──► sink (Kafka)
                 │ decode JPEG + letterbox      │ model_runs runs at once,
                 │ per frame in a thread pool   │ each on a thread of its own

Each stage hands the next a ``Batch`` through a bounded queue, so while the model runs
batch k (and k+1 with ``model_runs: 2``) the pool decodes the next one and the output
thread decodes boxes of batch k-1.
A full queue blocks the stage before it, the batcher fills, and the poll loop pauses
its partitions: memory is bounded by the queue sizes whatever the backlog.

Cameras may be served by different detectors (a canary serves a share of them): the
prepare stage asks ``detector_for`` once per camera of a micro-batch and splits it into one
sub-batch per detector (``split_by_detector``), each its own ``Batch``, prepared and queued
one after another, so the prepare stage holds one pooled buffer at a time. A batch keeps
its detector through run and postprocess, so a detector may be swapped between batches
without mixing two models' tensors and outputs, and its Detections records and statistics
name the version that ran it. Order is kept: FIFO queues, all of a camera's frames of a
micro-batch go to one sub-batch, and with several runs in the model the output thread
still takes the batches in the order they arrived.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
from opentelemetry import trace

from pipeline import telemetry
from pipeline.detections import Detections
from pipeline.exceptions import DecodeError
from pipeline.inference.base import Detector, PreparedBatch, RawOutputs
from pipeline.inference.batcher import BlockingBatcher, monotonic_ms
from pipeline.inference.frames import FrameItem, FrameLimits, decode_frame_image, detections_record
from pipeline.inference.stats import BatchStat, StatsReporter
from pipeline.inference.timing import timed

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("camcount.inference")

_STOP = object()
_TICK_S = 0.05


class FrameSink(Protocol):
    """Where finished frames go (the worker's Kafka producer)."""

    def emit(self, item: FrameItem, record: dict) -> None:
        """Produce the Detections record of ``item``; its offset is finished on ack."""

    def dead_letter(self, item: FrameItem, error: DecodeError) -> None:
        """Send ``item`` to the dead-letter topic; its offset is finished on ack."""

    def poll(self) -> None:
        """Serve delivery callbacks."""


@dataclass
class Batch:
    """Frames of one model run. ``rows[i]`` is item i's row in ``prepared`` (None: an
    end-of-stream marker, passed through without boxes)."""

    items: list[FrameItem]
    rows: list[int | None]
    detector: Detector
    prepared: PreparedBatch | None
    buffer: np.ndarray | None
    raw: RawOutputs | None = None
    inference_ms: float = 0.0
    run_start_ms: int = field(default_factory=monotonic_ms)


class BufferPool:
    """Batch tensors reused across batches, one per pipeline slot (memory fixed at start)."""

    def __init__(self, slots: int, max_batch: int) -> None:
        self._free: queue.Queue[np.ndarray] = queue.Queue()
        self._slots = threading.Semaphore(slots)
        self._max_batch = max_batch

    def acquire(self, detector: Detector) -> np.ndarray | None:
        """A buffer shaped for ``detector`` (None if it cannot make one: it allocates)."""
        new_buffer = getattr(detector, "new_buffer", None)
        if new_buffer is None:
            return None
        self._slots.acquire()
        try:
            buffer = self._free.get_nowait()
        except queue.Empty:
            buffer = None
        template_shape = (self._max_batch, 3, *getattr(detector, "input_hw", ()))
        if buffer is None or buffer.shape != template_shape:
            buffer = new_buffer(self._max_batch)
        return buffer

    def release(self, buffer: np.ndarray | None) -> None:
        if buffer is not None:
            self._free.put(buffer)
            self._slots.release()


class Pipeline:
    """Owns the stage threads, their queues and the decode pool."""

    def __init__(self, *, batcher: BlockingBatcher, detector_for: Callable[[str], Detector],
                 sink: FrameSink, stats: StatsReporter, limits: FrameLimits, max_batch: int,
                 decode_threads: int, prepared_queue_batches: int, output_queue_batches: int,
                 model_runs: int = 1, helper_nice: int = 0, inject_delay_ms: int = 0) -> None:
        self.batcher = batcher
        self._detector_for = detector_for
        self._sink = sink
        self._stats = stats
        self._limits = limits
        self._inject_delay_s = inject_delay_ms / 1000
        self._run_q: queue.Queue = queue.Queue(prepared_queue_batches)
        self._out_q: queue.Queue = queue.Queue(output_queue_batches)
        # A buffer is held from prepare until its batch's run ends.
        self._buffers = BufferPool(prepared_queue_batches + model_runs + 1, max_batch)
        self._helper_nice = helper_nice
        self._pool = ThreadPoolExecutor(decode_threads, thread_name_prefix="infer-decode",
                                        initializer=lower_priority, initargs=(helper_nice,))
        self._runs = ThreadPoolExecutor(model_runs, thread_name_prefix="infer-run")
        self._run_slots = threading.Semaphore(model_runs)
        self._closing = threading.Event()
        self._abort = threading.Event()
        self.failure: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._guard, args=(fn,), name=f"infer-{name}", daemon=True)
            for name, fn in (("prepare", self._prepare_loop), ("dispatch", self._run_loop),
                             ("output", self._output_loop))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout_s: float) -> bool:
        """Finish every batched frame, then stop the threads; False if that took too long."""
        self._closing.set()
        self.batcher.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = not any(t.is_alive() for t in self._threads)
        if not finished:
            self.abort()
        self._pool.shutdown(wait=finished, cancel_futures=True)
        self._runs.shutdown(wait=finished, cancel_futures=True)
        return finished

    def abort(self) -> None:
        """Stop without finishing (after a failure): frames in flight are not acked."""
        self._abort.set()
        self.batcher.close()

    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - reported to the poll loop, which stops
            log.exception("inference stage %s failed", threading.current_thread().name)
            if self.failure is None:
                self.failure = exc
            self.abort()

    def _put(self, q: queue.Queue, item: object) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=_TICK_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> object | None:
        while not self._abort.is_set():
            try:
                return q.get(timeout=_TICK_S)
            except queue.Empty:
                if q is self._out_q:
                    self._sink.poll()
        return None

    # -- prepare: decode + letterbox ------------------------------------------------------

    def _prepare_loop(self) -> None:
        while not self._abort.is_set():
            items = self.batcher.get_batch(timeout_s=_TICK_S)
            if items is None:
                if self._closing.is_set() and len(self.batcher) == 0:
                    break
                continue
            for detector, part in split_by_detector(items, self._detector_for):
                batch = self._prepare(detector, part)
                if batch is not None and not self._put(self._run_q, batch):
                    return
        self._put(self._run_q, _STOP)

    def _prepare(self, detector: Detector, items: list[FrameItem]) -> Batch | None:
        buffer = self._buffers.acquire(detector)
        decodable = [i for i, item in enumerate(items) if not item.end_of_stream]
        futures = {  # item index -> (its row in the buffer, decode + letterbox task)
            i: (row, self._pool.submit(self._decode_one, detector, items[i], buffer, row))
            for row, i in enumerate(decodable)
        }
        kept, rows, parts, used = [], [], [], []
        for i, item in enumerate(items):
            part = None
            if i in futures:
                part = self._result(futures[i][1], item)
                if part is None:
                    continue  # dead-lettered
                used.append(futures[i][0])
                parts.append(part)
            kept.append(item)
            rows.append(None if part is None else len(parts) - 1)
        if not kept:
            self._buffers.release(buffer)
            return None
        prepared = _assemble(parts, used, buffer) if parts else None
        return Batch(kept, rows, detector, prepared, buffer)

    def _decode_one(self, detector: Detector, item: FrameItem, buffer: np.ndarray | None,
                    row: int) -> PreparedBatch:
        with timed(getattr(detector, "recorder", None), detector.name, detector.version, "decode", 1):
            image = decode_frame_image(item.frame, self._limits)
        out = None if buffer is None else buffer[row : row + 1]
        return detector.preprocess([image], out=out)

    def _result(self, future: Future, item: FrameItem) -> PreparedBatch | None:
        try:
            return future.result()
        except DecodeError as exc:
            self._sink.dead_letter(item, exc)
            return None

    # -- run: the model ------------------------------------------------------------------

    def _run_loop(self) -> None:
        """Start each batch's run as soon as one of ``model_runs`` slots is free; the output
        stage gets the batches in arrival order and waits for each one's run."""
        while (batch := self._get(self._run_q)) is not None:
            if batch is _STOP:
                self._put(self._out_q, _STOP)
                return
            while not self._run_slots.acquire(timeout=_TICK_S):
                if self._abort.is_set():
                    return
            run = self._runs.submit(self._run, batch)
            if not self._put(self._out_q, (batch, run)):
                return

    def _run(self, batch: Batch) -> None:
        try:
            batch.run_start_ms = monotonic_ms()
            if batch.prepared is not None:
                start = time.perf_counter()
                batch.raw = batch.detector.run(batch.prepared)
                batch.inference_ms = 1000 * (time.perf_counter() - start)
                if self._inject_delay_s:
                    time.sleep(self._inject_delay_s)
        finally:
            self._buffers.release(batch.buffer)
            batch.prepared = batch.buffer = None
            self._run_slots.release()

    # -- output: boxes, records, produce ---------------------------------------------------

    def _output_loop(self) -> None:
        lower_priority(self._helper_nice)
        while (item := self._get(self._out_q)) is not None:
            if item is _STOP:
                return
            batch, run = item
            while not self._abort.is_set():
                try:
                    run.result(timeout=_TICK_S)  # a failed run raises here: the worker stops
                    break
                except FutureTimeout:
                    self._sink.poll()
            else:
                return
            self._emit(batch)
            self._sink.poll()

    def _emit(self, batch: Batch) -> None:
        detector = batch.detector
        found = detector.postprocess(batch.raw) if batch.raw is not None else []
        size = len(found)
        model = (detector.name, detector.version)
        now_ns, now_ms = time.time_ns(), monotonic_ms()
        for item, row in zip(batch.items, batch.rows):
            boxes = found[row] if row is not None else Detections.empty()
            record = detections_record(item.frame, boxes, model, batch.inference_ms, size)
            # The frame's trace goes on: "infer" spans poll to produce, the sink injects its context.
            with _tracer.start_as_current_span(
                    "infer", context=telemetry.extract(item.headers),
                    start_time=now_ns - (now_ms - item.polled_ms) * 1_000_000, attributes={
                        "camera_id": record["camera_id"], "seq": record["seq"], "model_name": model[0],
                        "model_version": model[1], "batch_size": size, "boxes": len(record["boxes"]),
                        "inference_ms": batch.inference_ms}):
                self._sink.emit(item, record)
        oldest_capture_ms = min(item.frame["capture_ts_ms"] for item in batch.items)
        self._stats.record(BatchStat(
            model=model, frames=len(batch.items),
            queue_wait_ms=float(batch.run_start_ms - batch.items[0].polled_ms),
            inference_ms=batch.inference_ms,
            lag_ms=float(max(0, int(time.time() * 1000) - oldest_capture_ms)),
        ))


def split_by_detector(items: list[FrameItem], detector_for: Callable[[str], Detector],
                      ) -> list[tuple[Detector, list[FrameItem]]]:
    """``items`` as one (detector, frames) group per detector, groups in order of their first
    frame, frames in their order. ``detector_for`` is asked once per camera, so all frames of
    a camera go to one group even if the answer changes meanwhile (a swap): a camera's later
    frame can never run before an earlier one."""
    by_camera: dict[str, Detector] = {}
    groups: dict[int, tuple[Detector, list[FrameItem]]] = {}
    for item in items:
        camera = item.frame["camera_id"]
        detector = by_camera.get(camera)
        if detector is None:
            detector = by_camera[camera] = detector_for(camera)
        groups.setdefault(id(detector), (detector, []))[1].append(item)
    return list(groups.values())


def _assemble(parts: list[PreparedBatch], used_rows: list[int], buffer: np.ndarray | None) -> PreparedBatch:
    """One batch tensor from per-frame results (rows of frames that failed are squeezed out)."""
    metas = tuple(meta for part in parts for meta in part.metas)
    if buffer is None:
        return PreparedBatch(np.concatenate([part.tensor for part in parts]), metas)
    if used_rows != list(range(len(parts))):
        buffer[: len(parts)] = buffer[used_rows]
    return PreparedBatch(buffer[: len(parts)], metas)


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux schedules threads alone).

    The decode and output threads then take the CPU the model's threads leave idle instead
    of preempting them mid-operator (every intra-op thread waits for the slowest one).
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:
        log.warning("could not lower the priority of thread %d: %s", tid, exc)
