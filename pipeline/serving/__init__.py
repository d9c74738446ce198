"""Inference as a service: the Open Inference Protocol v2 REST API beside the stream.

Import from the modules (``pipeline.serving.app``, ``.protocol``, ...): this package
file stays empty so pure modules such as ``protocol`` and ``ratelimit`` load without
onnxruntime, OpenCV or the HTTP stack.
"""

# ``pipeline.config`` imports our config section after defining ``Section``; loading it
# first means importing ``pipeline.serving.config`` directly never meets a half-built module.
import pipeline.config  # noqa: F401,E402
