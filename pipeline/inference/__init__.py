"""Inference: registry-verified ONNX detectors, micro-batching, output decoding.

Import from the modules (``pipeline.inference.detector``, ``.batcher``, ...):
this package file stays empty so pure modules such as ``batcher`` and ``nms``
load without onnxruntime or OpenCV.
"""

# ``pipeline.config`` imports our config section after defining ``Section``; loading it
# first means importing ``pipeline.inference.config`` directly never meets a half-built module.
# (Until session.py imports onnxruntime lazily, this loads onnxruntime with any submodule:
# ``InferenceConfig`` holds a ``SessionSettings``.)
import pipeline.config  # noqa: F401,E402
