"""INT8 variants of a registered model: onnxruntime's static quantization, calibrated on real frames.

An INT8 variant is a separate model version in the registry, judged in shadow or as a
canary like any candidate before it is promoted (DESIGN.md). On a CPU with VNNI a
single-threaded YOLOX-Nano session runs 1.4x the frames of the float one, and it detects
differently: on the sample clips it counts 5 of 66 crossings wrong where the float
model counts none (README, "INT8 variants"), which is why this builds a candidate for
an operator to judge on their own cameras instead of replacing anything.

Calibration frames go through the float model's own letterbox, so the activation
ranges are those the worker feeds. Weights are quantized per channel (int8),
activations per tensor (uint8), in QDQ form, so the file keeps the float model's inputs
and outputs and the same registry contract. Activation ranges are the 99.999th
percentiles of the calibration frames, not their min/max: YOLOX's rare large
activations stretched min/max ranges so far that the INT8 model found 71 % of the
people the float one found on pets09 frames, against 100 % with percentiles.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import av
import numpy as np

from pipeline.exceptions import ConfigError
from pipeline.ingest.exceptions import SourceError
from pipeline.inference.detector import OnnxDetector
from pipeline.inference.registry import ModelSpec

#: QDQ with per-channel axes needs opset 13; older exports are converted first.
MIN_OPSET = 13


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` BGR frames spread evenly over the video (every frame if it has fewer)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            total = stream.frames or 0
            step = max(1, total // count) if total else 1
            frames = [f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(stream)) if i % step == 0]
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise SourceError(f"{path}: cannot read video frames: {exc}") from None
    if not frames:
        raise SourceError(f"{path}: no video frames")
    return frames[:count]


def calibration_inputs(detector: OnnxDetector, frames: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Each frame as the float model's ``(1, 3, H, W)`` input, letterboxed as the worker does."""
    return [detector.preprocess([frame]).tensor.copy() for frame in frames]


def quantize_int8(model: bytes, input_name: str, inputs: Sequence[np.ndarray], notice: str) -> bytes:
    """The INT8 (QDQ) version of an ONNX float model, calibrated on ``inputs`` (needs ``onnx``).

    ``notice`` (what was changed, from what) becomes the file's doc_string and
    ``modification`` metadata: a modified file must say so (Apache-2.0 section 4(b)).
    """
    try:
        import onnx
        from onnx import version_converter
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise ConfigError("quantizing a model needs the 'onnx' package (pip install 'camcount[quantize]')") from exc

    class Feed(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tensor = next(self._inputs, None)
            return None if tensor is None else {input_name: tensor}

    graph = onnx.load_from_string(model)
    opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        graph = version_converter.convert_version(graph, MIN_OPSET)
    with tempfile.TemporaryDirectory(prefix="camcount-quantize-") as tmp:
        float_path, prepared, out = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        onnx.save(graph, float_path)
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its histogram settings
            quantize_static(str(prepared), str(out), Feed(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile)
        quantized = onnx.load(out)
    quantized.doc_string = notice
    onnx.helper.set_model_props(quantized, {p.key: p.value for p in quantized.metadata_props} | {"modification": notice})
    return quantized.SerializeToString()


def registry_entry(spec: ModelSpec, version: str, file: str, sha256: str) -> dict[str, Any]:
    """``spec``'s registry entry for the INT8 file: same contract, new version, file and checksum.

    No ``source``: the file is built here, not downloaded.
    """
    entry = spec.model_dump(mode="json", exclude={"source"}, exclude_none=True)
    return entry | {"version": version, "file": file, "sha256": sha256}
