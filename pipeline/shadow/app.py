"""The comparator stream processor (faust): ``detections`` + ``detections.shadow`` in,
``model_comparison`` rows in ClickHouse out.

Both topics are keyed by camera_id with the same partition count, so one agent over both
sees every frame of a camera from both sides; ``join.Joiner`` pairs them by frame and
closes windows. The join state is in memory: a restart loses the open windows (at most
``window_ms + max_wait_ms`` of comparisons), which is acceptable for statistics that are
recomputed every window; rows are keyed by window, so a replay replaces them. Windows
still open at shutdown are not written (they close by watermark or end of stream).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust

from pipeline.codec import DETECTIONS, default_codec
from pipeline.config import Settings
from pipeline.counting.processor import CountingProcessor
from pipeline.exceptions import DecodeError
from pipeline.inference.registry import ModelRegistry
from pipeline.kafka import topics
from pipeline.kafka.faust_app import make_app
from pipeline.shadow.comparator import COMPARISON_COLUMNS, comparison_row
from pipeline.shadow.join import PRIMARY, SHADOW, Joiner, RuleCounts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareOptions:
    #: Window length. Longer windows give steadier figures per row, later.
    window_ms: int = 10_000
    #: How long (event time) a frame waits for its other side. Longer tolerates a slower
    #: candidate; shorter bounds the memory of unsampled primary frames and row latency.
    max_wait_ms: int = 5_000


def write_rows(settings: Settings, records: list[dict[str, Any]]) -> None:
    from pipeline.sinks.clickhouse import make_client, with_retry

    rows = [comparison_row(r) for r in records]
    sql = f"INSERT INTO model_comparison ({', '.join(COMPARISON_COLUMNS)}) VALUES"
    with_retry(lambda: make_client(settings.clickhouse).execute(sql, rows), attempts=5)
    for r in records:
        log.info("model_comparison %s %s:%s vs %s:%s [%d, %d): %d frames, count diff %d", r["camera_id"],
                 r["primary_model"], r["primary_version"], r["candidate_model"], r["candidate_version"],
                 r["window_start_ms"], r["window_end_ms"], r["frames_compared"], r["count_diff"])


def build_app(settings: Settings, registry: ModelRegistry, options: CompareOptions = CompareOptions()) -> faust.App:
    codec = default_codec()
    app = make_app(settings, "camcount-comparator")
    primary_topic = topics.name(settings, topics.DETECTIONS)
    shadow_topic = topics.name(settings, topics.DETECTIONS_SHADOW)
    source = app.topic(primary_topic, shadow_topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")

    def class_names(model: tuple[str, str]) -> tuple[str, ...]:
        return registry.class_names(registry.get(*model))

    counts = RuleCounts(lambda: CountingProcessor(settings, lambda n, v: class_names((n, v)),
                                                  settings.counting.tracker_params()))
    joiner = Joiner(options.window_ms, options.max_wait_ms, counts, class_names)

    @app.agent(source)
    async def compare(stream: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            msg = event.message
            try:
                record = codec.decode_as(event.value, DETECTIONS)
            except DecodeError as exc:  # the counter dead-letters these; here they are skipped
                log.warning("detections %s[%d]@%d skipped: %s", msg.topic, msg.partition, msg.offset, exc)
                continue
            due = joiner.add(SHADOW if msg.topic == shadow_topic else PRIMARY, record)
            if due:
                await loop.run_in_executor(None, write_rows, settings, due)

    return app
