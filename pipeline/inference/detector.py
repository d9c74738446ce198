"""``OnnxDetector``: a registry model version run by onnxruntime, stage by stage.

The stages (preprocess, run, postprocess) are separate so a worker can overlap
them across batches; each is timed per model name and version, as kserve
times preprocess/predict/postprocess.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from typing import Sequence

import numpy as np
import onnxruntime as ort

from pipeline.detections import Detections
from pipeline.inference.base import LatencyRecorder, PreparedBatch, RawOutputs
from pipeline.inference.decoders import DecodeSettings, OutputDecoder, build_decoder
from pipeline.inference.preprocess import letterbox_batch
from pipeline.inference.registry import ModelRegistry, ModelSpec, verify_session_io
from pipeline.inference.session import SessionSettings, create_session
from pipeline.inference.timing import timed


class OnnxDetector:
    """Implements ``pipeline.inference.base.Detector`` for one ONNX model version."""

    def __init__(
        self,
        spec: ModelSpec,
        session: ort.InferenceSession,
        decoder: OutputDecoder,
        class_names: Sequence[str],
        recorder: LatencyRecorder | None = None,
    ) -> None:
        verify_session_io(session, spec)
        self.name = spec.name
        self.version = spec.version
        self.spec = spec
        self.class_names = tuple(class_names)
        self.session = session
        self.decoder = decoder
        self.recorder = recorder
        self.input_hw = (spec.input.height, spec.input.width)
        self._output_tail = tuple(int(d) for d in spec.output.shape[1:])
        self._letterbox_options = {
            "pad_value": float(spec.input.letterbox.pad_value),
            "swap_rb": spec.input.colour == "RGB",
            "scale": 1.0 / 255.0 if spec.input.normalisation == "unit" else 1.0,
        }
        self._local = threading.local()

    def new_buffer(self, batch_size: int) -> np.ndarray:
        """A batch tensor buffer for ``preprocess(out=...)``; reuse it per pipeline slot."""
        return np.empty((batch_size, 3, *self.input_hw), np.float32)

    def preprocess(
        self,
        images: Sequence[np.ndarray],
        out: np.ndarray | None = None,
        executor: Executor | None = None,
    ) -> PreparedBatch:
        """Letterbox BGR frames into ``out[:n]`` (a fresh buffer when None).

        The returned tensor is a view of ``out``: do not refill ``out`` until
        ``run`` has consumed the batch.
        """
        buffer = self.new_buffer(len(images)) if out is None else out
        with self._timed("preprocess", len(images)):
            metas = letterbox_batch(images, buffer, executor, **self._letterbox_options)
        return PreparedBatch(buffer[: len(images)], metas)

    def run(self, batch: PreparedBatch) -> RawOutputs:
        """One ``session.run`` per batch (per frame for a batch-1 model)."""
        if len(batch) == 0:
            empty = np.zeros((0, *self._output_tail), np.float32)
            return RawOutputs((empty,), batch.metas)
        output_names = [self.spec.output.name]
        with self._timed("run", len(batch)):
            if self.spec.input.dynamic_batch:
                outputs = self.session.run(output_names, {self.spec.input.name: batch.tensor})
            else:
                per_frame = [
                    self.session.run(output_names, {self.spec.input.name: row[None]})[0]
                    for row in batch.tensor
                ]
                outputs = [np.concatenate(per_frame)]
        return RawOutputs(tuple(outputs), batch.metas)

    def postprocess(self, raw: RawOutputs) -> list[Detections]:
        with self._timed("postprocess", len(raw)):
            return self.decoder.decode_batch(raw.outputs, raw.metas)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """All stages in the calling thread, reusing that thread's buffer."""
        buffer = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < len(images):
            buffer = self._local.buffer = self.new_buffer(max(1, len(images)))
        return self.postprocess(self.run(self.preprocess(images, out=buffer)))

    def warmup(self, batch_size: int = 1) -> None:
        """Run one batch of padding so the first real batch does not pay allocation
        (or, on TensorRT, engine building) latency."""
        rows = batch_size if self.spec.input.dynamic_batch else 1
        tensor = np.full((rows, 3, *self.input_hw), 114.0, np.float32)
        self.session.run([self.spec.output.name], {self.spec.input.name: tensor})

    def _timed(self, stage: str, frames: int):
        return timed(self.recorder, self.name, self.version, stage, frames)


def load_detector(
    registry: ModelRegistry,
    name: str,
    version: str,
    session_settings: SessionSettings = SessionSettings(),
    decode_settings: DecodeSettings = DecodeSettings(),
    recorder: LatencyRecorder | None = None,
) -> OnnxDetector:
    """Verify (sha256, inputs, outputs) and load one registry model version."""
    spec = registry.get(name, version)
    model_bytes = registry.read_verified(spec)
    class_names = registry.class_names(spec)
    decoder = build_decoder(spec, class_names, decode_settings)
    session = create_session(model_bytes, session_settings)
    return OnnxDetector(spec, session, decoder, class_names, recorder)
