"""Interfaces of the ingest package: the message a reader hands on, and where it goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opentelemetry import context, trace

from pipeline import telemetry
from pipeline.codec import FRAME, Codec, default_codec
from pipeline.ingest.encode import EncodedImage

_tracer = trace.get_tracer("camcount.ingest")


@dataclass(frozen=True)
class OutgoingFrame:
    """One Avro ``Frame`` ready for the ``frames`` topic (key = camera_id)."""

    camera_id: str
    seq: int
    capture_ts_ms: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def key(self) -> bytes:
        return self.camera_id.encode()


def frame_message(camera_id: str, stream_id: str, seq: int, capture_ts_ms: int, image: EncodedImage | None,
                  codec: Codec | None = None, start_time_ns: int | None = None) -> OutgoingFrame:
    """Encode one JPEG frame as an Avro ``Frame``; each frame is the root span ``ingest.frame``
    of a new trace, whose context goes along in the ``traceparent`` header.

    ``image=None`` makes the stream's end-of-stream marker: no image, ``end_of_stream`` set.
    ``start_time_ns`` (wall clock) starts the span earlier, e.g. before the JPEG encode.
    Without a tracer provider (``telemetry.setup`` not called) there is no span and no header.
    """
    span = _tracer.start_span("ingest.frame", context=context.Context(), start_time=start_time_ns, attributes={
        "camera_id": camera_id, "stream_id": stream_id, "seq": seq, "capture_ts_ms": capture_ts_ms,
        "end_of_stream": image is None, "frame_bytes": len(image.data) if image else 0,
    })
    with trace.use_span(span, end_on_exit=True):
        value = _encode(camera_id, stream_id, seq, capture_ts_ms, image, codec)
        headers = telemetry.inject()
    return OutgoingFrame(camera_id, seq, capture_ts_ms, value, tuple(headers))


def _encode(camera_id: str, stream_id: str, seq: int, capture_ts_ms: int, image: EncodedImage | None,
            codec: Codec | None) -> bytes:
    return (codec or default_codec()).encode(FRAME, {
        "camera_id": camera_id,
        "stream_id": stream_id,
        "seq": seq,
        "capture_ts_ms": capture_ts_ms,
        "width": image.width if image else 0,
        "height": image.height if image else 0,
        "encoding": "jpeg",
        "data": image.data if image else b"",
        "end_of_stream": image is None,
    })


class FrameSink(Protocol):
    """Where a camera reader puts its frames (``FrameQueue`` in the worker)."""

    def put(self, camera_id: str, item: OutgoingFrame, timeout_s: float | None = None) -> OutgoingFrame | None:
        """Queue ``item``; return a frame dropped to make room, or raise ``queue.Full`` on timeout."""

    def close(self, camera_id: str) -> None:
        """The camera's reader is done."""
