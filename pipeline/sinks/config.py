"""Configuration of the ClickHouse sink: batching and retry policy."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config import Section


class SinkConfig(Section):
    """Batched inserts into ClickHouse from ``counts`` and ``count-events``.

    Bigger batches (``batch_rows``) and longer ``flush_interval_ms`` mean fewer, cheaper
    inserts (ClickHouse prefers few large ones) but rows become visible later and more
    is replayed after a crash; smaller ones give fresher rows at more server load.
    """

    #: Consumer group of the sink; the topic prefix is prepended.
    group_id: str = Field("camcount-sink", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    #: Flush when this many rows are buffered (over all partitions and tables).
    batch_rows: int = Field(10_000, ge=1)
    #: Flush at least this often while rows are buffered.
    flush_interval_ms: int = Field(1_000, ge=1)
    #: First wait after a failed insert; doubled on each further failure up to ``backoff_max_ms``.
    backoff_initial_ms: int = Field(500, ge=1)
    backoff_max_ms: int = Field(30_000, ge=1)

    @model_validator(mode="after")
    def _backoff_order(self) -> "SinkConfig":
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError("backoff_max_ms must be >= backoff_initial_ms")
        return self
