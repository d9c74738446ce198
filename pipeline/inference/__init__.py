"""Inference: registry-verified ONNX detectors, micro-batching, output decoding.

Import from the modules (``pipeline.inference.detector``, ``.batcher``, ...):
this package file stays empty so pure modules such as ``batcher`` and ``nms``
load without onnxruntime or OpenCV.
"""
