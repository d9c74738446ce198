"""The ``inference:`` section of the config file: batching, queues, limits, session, stats."""

from __future__ import annotations

import os

from pydantic import Field, model_validator

from pipeline.config import Section
from pipeline.inference.decoders.base import DecodeSettings
from pipeline.inference.session import SessionSettings


class WorkerSessionSettings(SessionSettings):
    """``SessionSettings`` with the worker's default: no spinning, so idle intra-op threads
    sleep and leave the CPU to decoding (same bare speed on a 2-core CPU, a steadier worker
    next to the decode threads; see bench/bench_inference.py)."""

    allow_spinning: bool = False


class InferenceConfig(Section):
    #: Consumer group of the primary inference workers (``camcount infer --group`` overrides).
    group_id: str = Field("camcount-inference", min_length=1)
    #: Name in logs and in ClickHouse ``inference_stats``; unset means ``<hostname>-<pid>``.
    worker_id: str | None = None

    #: Frames per model run. Raising it amortises per-run overhead (large on GPUs) but makes
    #: each batch wait longer to fill; on a small CPU batch 1 and 8 run at about the same
    #: frames/s, so a larger batch mostly buys overlap of decoding with the model run.
    max_batch: int = Field(8, ge=1, le=256)
    #: The most a frame waits for its batch to fill, counted from the batch's first frame:
    #: the latency batching may add. 0 sends whatever is pending at once.
    max_wait_ms: int = Field(20, ge=0, le=10_000)

    #: Frames polled but not yet batched. When full the worker pauses its partitions (Kafka
    #: holds the backlog); raising it rides out short stalls at the cost of memory
    #: (frames x ~50-300 KB of JPEG).
    max_pending_frames: int = Field(32, ge=1, le=100_000)
    #: Resume the partitions once the pending frames drop to this fraction of the maximum.
    #: Lower pauses less often (each pause drops librdkafka's prefetched data, re-fetched on
    #: resume) but risks running the model dry while the fetch restarts.
    resume_fraction: float = Field(0.5, ge=0.0, lt=1.0)
    #: How long the pipeline may stay full before the partitions are paused. Meanwhile the
    #: poll loop stops polling and librdkafka's prefetch queue (``consumer_queue_kbytes``)
    #: holds the input; a pause drops that queue and costs up to ~1 s of re-fetch on resume,
    #: so pausing at once (0) starves the model in a steady backlog.
    pause_after_ms: int = Field(500, ge=0)
    #: Decoded, letterboxed batches waiting for the model (each holds one batch tensor).
    prepared_queue_batches: int = Field(2, ge=1, le=64)
    #: Batches in the model at once, each run by its own thread in order of arrival. On a
    #: CPU, 2 runs with 1 intra-op thread each beat 1 run with 2 threads on 2 cores
    #: (no operator waits for a sibling thread preempted by decoding; bench_inference.py
    #: measures both); on a GPU, 2 overlap one batch's copies with the other's compute.
    #: ``session.intra_op_num_threads: 0`` then means cores / model_runs threads per run.
    model_runs: int = Field(2, ge=1, le=16)
    #: Model outputs waiting for decoding, NMS and produce.
    output_queue_batches: int = Field(2, ge=1, le=64)
    #: Threads decoding JPEG and letterboxing (OpenCV releases the GIL). More overlap the
    #: model run better on many cores; on a 2-core CPU they compete with onnxruntime.
    decode_threads: int = Field(2, ge=1, le=64)
    #: Niceness added to the decode and output threads (Linux): they then fill the model
    #: run's idle gaps instead of preempting its threads mid-operator. 0 = same priority.
    #: Pair it with ``session.allow_spinning: false``, or spinning model threads starve them.
    helper_nice: int = Field(10, ge=0, le=19)
    #: Bound of librdkafka's own prefetch queue per consumer (KiB), part of the memory bound.
    consumer_queue_kbytes: int = Field(16_384, ge=1024)
    #: Extra librdkafka settings of the worker's consumer only, e.g. ``session.timeout.ms``
    #: (how soon a crashed worker's partitions move) or ``group.instance.id`` (static member).
    consumer_overrides: dict[str, str | int | bool] = Field(default_factory=dict)

    session: WorkerSessionSettings = WorkerSessionSettings()
    decode: DecodeSettings = DecodeSettings()

    #: Freshness over completeness: frames whose capture time is older than this when polled
    #: are skipped (counted and logged, offset stored, no detections). None never skips.
    max_lag_ms: int | None = Field(None, ge=1)

    #: Largest Frame message accepted; bigger ones go to the dead-letter topic.
    max_frame_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_width: int = Field(4096, ge=16)
    max_height: int = Field(4096, ge=16)

    #: How often per-batch statistics are logged and written to ClickHouse ``inference_stats``.
    stats_interval_ms: int = Field(10_000, ge=100)
    #: Stats rows kept while ClickHouse is unreachable; older ones are dropped (and counted).
    stats_backlog_rows: int = Field(1000, ge=1)

    #: On a rebalance, how long to wait for in-flight frames of revoked partitions to be
    #: acknowledged before giving them up (the new owner then re-processes them).
    revoke_drain_timeout_ms: int = Field(10_000, ge=0)
    #: On SIGTERM, how long to finish in-flight frames and flush the producer.
    shutdown_timeout_ms: int = Field(30_000, ge=0)

    #: Test/debug knob: sleep this long after each model run (simulates a slow model).
    inject_delay_ms: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _pending_holds_a_batch(self) -> "InferenceConfig":
        if self.max_pending_frames < self.max_batch:
            raise ValueError(
                f"max_pending_frames ({self.max_pending_frames}) must be >= max_batch ({self.max_batch})"
            )
        return self

    @property
    def worker_session(self) -> WorkerSessionSettings:
        """The worker's session settings: ``intra_op_num_threads: 0`` (auto) with several
        model runs means cores / model_runs threads each, so together they fill the CPU
        without oversubscribing it."""
        if self.model_runs == 1 or self.session.intra_op_num_threads:
            return self.session
        threads = max(1, len(os.sched_getaffinity(0)) // self.model_runs)
        return self.session.model_copy(update={"intra_op_num_threads": threads})

    @property
    def resume_pending_frames(self) -> int:
        return int(self.max_pending_frames * self.resume_fraction)
