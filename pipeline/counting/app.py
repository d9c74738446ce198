"""The counter stream processor (faust): ``detections`` in, ``count-events`` out.

Each camera's tracker and rule state is a value in the table ``counter-state`` (changelog
backed), keyed by camera id, so a restarted or rebalanced worker resumes the camera's
tracks. Re-delivered frames are recognised by (stream_id, seq) and change nothing; count
events carry deterministic ids, so anything emitted twice is de-duplicated downstream.
A frame's state reaches the changelog only after its events are acknowledged, and the
frame is committed after that (``durable_agent``), so a crash never loses an event.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable

import faust
from opentelemetry import metrics, trace

from pipeline import telemetry
from pipeline.codec import DETECTIONS, default_codec
from pipeline.config import Settings
from pipeline.counting.processor import CountingProcessor, check_box_limit
from pipeline.exceptions import DecodeError
from pipeline.inference.registry import ModelRegistry
from pipeline.kafka import topics
from pipeline.kafka.faust_app import durable_agent, event_headers, make_app, raw_topic
from pipeline.kafka.headers import dlq_headers

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("camcount.counter")
_meter = metrics.get_meter("camcount.counter")
_DETECTIONS_IN = _meter.create_counter("camcount.counter.frames_in", unit="{frame}",
                                       description="Detections records consumed")
_EVENTS_OUT = _meter.create_counter("camcount.counter.events_out", unit="{event}",
                                    description="Count and zone events produced")
_DEAD_LETTERED = _meter.create_counter("camcount.counter.frames_dead_lettered", unit="{frame}",
                                       description="Detections records sent to the dead-letter topic")


def build_app(settings: Settings, registry: ModelRegistry) -> faust.App:
    codec = default_codec()
    app = make_app(settings, "camcount-counter")
    source = raw_topic(app, topics.name(settings, topics.DETECTIONS))
    sink = raw_topic(app, topics.name(settings, topics.COUNT_EVENTS))
    dead = raw_topic(app, topics.name(settings, topics.dlq(topics.DETECTIONS)))
    state = app.Table("counter-state", default=None, key_type=str,
                      partitions=settings.topics.partitions)
    class_names = lambda name, version: registry.class_names(registry.get(name, version))  # noqa: E731
    processor = CountingProcessor(settings, class_names, settings.counting.tracker_params())

    async def handle(event: faust.EventT) -> list[Awaitable[Any]]:
        """One frame's detections: count, publish; the state follows its events (``durable_agent``)."""
        msg = event.message
        _DETECTIONS_IN.add(1)
        try:
            rec = codec.decode_as(event.value, DETECTIONS)
            check_box_limit(rec, settings.counting.max_boxes)
        except DecodeError as exc:
            _DEAD_LETTERED.add(1, {"reason": exc.reason})
            log.warning("detections %d/%d to the DLQ: %s", msg.partition, msg.offset, exc)
            return [await dead.send(key=event.key, value=event.value, headers=dlq_headers(
                list((event.headers or {}).items()), msg.topic, msg.partition, msg.offset, exc.reason, str(exc)))]
        camera = rec["camera_id"]
        out = processor.process(rec, state.get(camera))
        if out.duplicate:
            return []
        if out.state is not None:
            state[camera] = out.state
        # "count" continues the frame's trace; its context goes on with every count event.
        with _tracer.start_as_current_span("count", context=telemetry.extract(event_headers(event)),
                                           attributes={"camera_id": camera, "seq": rec["seq"],
                                                       "events": len(out.records)}):
            headers = telemetry.inject()
            published = [await sink.send(key=camera.encode(), value=codec.encode(record, value), headers=headers)
                         for record, value in out.records]
        _EVENTS_OUT.add(len(out.records), {"camera_id": camera})
        return published

    app.agent(source, name="count")(durable_agent("counter", handle))
    return app
