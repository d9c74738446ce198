"""Configuration of the aggregator: window size, allowed lateness, the faust app's identity."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from pipeline.config import Section


class AggregationConfig(Section):
    """Event-time tumbling windows over ``count-events``.

    Raising ``allowed_lateness_ms`` accepts events that arrive later (a slow camera, a
    replayed partition) at the cost of windows becoming final later and more state kept;
    lowering it finalises sooner but drops (and meters) more late events.
    """

    #: Tumbling window length; windows are ``[start, start + window_ms)`` aligned to the epoch.
    window_ms: int = Field(60_000, gt=0)
    #: How far behind the partition's newest capture time an event may be and still count.
    allowed_lateness_ms: int = Field(30_000, ge=0)
    #: faust app id (also its consumer group and changelog prefix); the topic prefix is prepended.
    app_id: str = Field("camcount-aggregator", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    #: Where faust keeps its local files; the window state itself lives in the changelog topic.
    data_dir: Path = Path(".camcount/aggregator")
    #: How often consumed offsets are committed (after the producer is flushed).
    commit_interval_ms: int = Field(2_000, ge=100)
    #: A worker silent this long is dropped from the group and its partitions move on. Lower
    #: means a crashed worker's partitions resume sooner; too low and a busy one gets evicted.
    session_timeout_ms: int = Field(30_000, ge=6_000)
