"""The counter stream processor (faust): ``detections`` in, ``count-events`` out.

Each camera's tracker and rule state is a value in the table ``counter-state`` (changelog
backed), keyed by camera id, so a restarted or rebalanced worker resumes the camera's
tracks. Re-delivered frames are recognised by (stream_id, seq) and change nothing; count
events carry deterministic ids, so anything emitted twice is de-duplicated downstream.
"""

from __future__ import annotations

import logging

import faust

from pipeline.codec import DETECTIONS, default_codec
from pipeline.config import Settings
from pipeline.counting.processor import CountingProcessor
from pipeline.exceptions import DecodeError
from pipeline.inference.registry import ModelRegistry
from pipeline.kafka import topics
from pipeline.kafka.faust_app import make_app, raw_topic
from pipeline.kafka.headers import dlq_headers

log = logging.getLogger(__name__)


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

    @app.agent(source)
    async def count(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                rec = codec.decode_as(event.value, DETECTIONS)
            except DecodeError as exc:
                log.warning("detections %d/%d to the DLQ: %s", msg.partition, msg.offset, exc)
                await dead.send(key=event.key, value=event.value, headers=dlq_headers(
                    list((event.headers or {}).items()), msg.topic, msg.partition, msg.offset, exc.reason, str(exc)))
                continue
            camera = rec["camera_id"]
            out = processor.process(rec, state.get(camera))
            if out.duplicate:
                continue
            if out.state is not None:
                state[camera] = out.state
            headers = [(k, v) for k, v in (event.headers or {}).items() if k == "traceparent"]
            for record, value in out.records:
                await sink.send(key=camera.encode(), value=codec.encode(record, value), headers=headers)

    return app
