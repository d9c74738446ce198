"""Interfaces of the inference package, apart from their implementations.

A worker pipelines a detector's three stages (letterbox in a thread pool, the
model run, output decoding) across consecutive batches, so the stages are
separate methods joined by plain records; shadow runners and tests swap in any
object that satisfies ``Detector``.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from pipeline.detections import Detections


class FrameMeta(NamedTuple):
    """What output decoding needs to map boxes back to one source frame."""

    ratio: float  # letterbox scale: model-input pixels per source pixel
    height: int  # source frame height in pixels
    width: int  # source frame width in pixels


@dataclass(frozen=True)
class PreparedBatch:
    """Model-ready input tensor ``(n, ...)`` and one ``FrameMeta`` per row."""

    tensor: np.ndarray
    metas: tuple[FrameMeta, ...]

    def __len__(self) -> int:
        return len(self.metas)


@dataclass(frozen=True)
class RawOutputs:
    """The model's output tensors for a batch, in the session's output order."""

    outputs: tuple[np.ndarray, ...]
    metas: tuple[FrameMeta, ...]

    def __len__(self) -> int:
        return len(self.metas)


@runtime_checkable
class Detector(Protocol):
    """One loaded model version turning BGR frames into ``Detections``."""

    name: str
    version: str

    def preprocess(
        self,
        images: Sequence[np.ndarray],
        out: np.ndarray | None = None,
        executor: Executor | None = None,
    ) -> PreparedBatch:
        """Letterbox BGR frames into a batch tensor (into ``out`` when given)."""
        ...

    def run(self, batch: PreparedBatch) -> RawOutputs:
        """Run the model on a prepared batch."""
        ...

    def postprocess(self, raw: RawOutputs) -> list[Detections]:
        """Decode raw outputs into one ``Detections`` per frame."""
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """All three stages in one call."""
        ...


class LatencyRecorder(Protocol):
    """Receives per-stage latencies, labelled by model name and version.

    Telemetry implements this with histograms; ``pipeline.inference.timing``
    has an in-memory one for tests and benchmarks.
    """

    def observe(
        self, model: str, version: str, stage: str, seconds: float, frames: int
    ) -> None:
        """Record that ``stage`` took ``seconds`` for a batch of ``frames``."""
        ...
