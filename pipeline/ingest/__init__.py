"""Ingest: cameras, RTSP/HTTP streams and files, sampled and JPEG-encoded onto the ``frames`` topic.

One worker process serves many cameras: a reader thread per camera (open, decode,
sample, encode) feeds a bounded queue that the Kafka producer drains.
"""

# ``pipeline.config`` imports our config section after defining ``Section``; loading it
# first means importing ``pipeline.ingest.config`` directly never meets a half-built module.
import pipeline.config  # noqa: F401
