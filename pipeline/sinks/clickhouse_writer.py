"""The ClickHouse sink: rows buffered per partition and table, written in batches.

``add`` only buffers. ``flush`` sends one INSERT per table (ClickHouse prefers few big
inserts) and forgets a table's rows once the server accepted them. If the server is
unreachable or refuses the insert, ``flush`` raises ``SinkBackpressureError`` with the
rows still buffered; the consumer loop pauses and calls it again after a backoff.

Re-inserting rows is harmless: ``counts`` and ``occupancy`` are ReplacingMergeTree by
version and ``count_events`` by event id, so a batch written twice (a retry after the
server took it but the answer was lost, or a replay after a crash) reads back once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable

from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from pipeline.aggregation.aggregator import INPUT_RECORDS
from pipeline.codec import ALERT, WINDOW_COUNT, WINDOW_OCCUPANCY, Codec, default_codec
from pipeline.config import ClickHouseConfig, Settings
from pipeline.kafka.topics import ALERTS, COUNT_EVENTS, COUNTS, name
from pipeline.sinks.base import SinkBackpressureError, SinkRecord, TopicPartition
from pipeline.sinks.clickhouse import TRANSIENT_ERRORS, make_client, server_version
from pipeline.sinks.migrations import Features
from pipeline.sinks.rows import RECORDS, TableSpec, table_specs
from pipeline.sinks.runner import SinkRunner

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff: ``next()`` gives the wait before the next attempt, ``reset()`` after a success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.max_s, self.initial_s * 2 ** (self.failures - 1))

    def reset(self) -> None:
        self.failures = 0


class ClickHouseSink:
    """Writes WindowCount, WindowOccupancy and CountEvent records to their tables."""

    def __init__(self, cfg: ClickHouseConfig, backoff: Backoff,
                 client_factory: Callable[[], Client] | None = None) -> None:
        self._cfg = cfg
        self._factory = client_factory or (lambda: make_client(cfg))
        self._client: Client | None = None
        self._specs: dict[str, TableSpec] | None = None
        self._backoff = backoff
        # (topic, partition) -> record name -> values; made rows at flush, when the server is known
        self._buffers: dict[TopicPartition, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        self._rows = 0

    # --- buffering (no I/O) ------------------------------------------------------------------

    def accepts(self, record: str) -> bool:
        return record in RECORDS

    def add(self, item: SinkRecord) -> None:
        self._buffers[(item.topic, item.partition)][item.record].append(item.value)
        self._rows += 1

    def buffered_rows(self) -> int:
        return self._rows

    def drop(self, partitions: list[TopicPartition]) -> int:
        dropped = 0
        for tp in partitions:
            for rows in self._buffers.pop(tp, {}).values():
                dropped += len(rows)
        self._rows -= dropped
        return dropped

    # --- writing -------------------------------------------------------------------------------

    def _connect(self) -> tuple[Client, dict[str, TableSpec]]:
        if self._client is None or self._specs is None:
            client = self._factory()
            self._specs = table_specs(Features.for_version(server_version(client)))
            self._client = client
        return self._client, self._specs

    def flush(self) -> int:
        if not self._rows:
            return 0
        written = 0
        try:
            client, specs = self._connect()
            for record in sorted({r for parts in self._buffers.values() for r in parts}):
                spec = specs[record]
                rows = [spec.to_row(v) for parts in self._buffers.values() for v in parts.get(record, ())]
                client.execute(spec.insert_sql(self._cfg.database), rows)
                for parts in self._buffers.values():
                    parts.pop(record, None)
                self._rows -= len(rows)
                written += len(rows)
        except TRANSIENT_ERRORS as exc:
            self.close()  # reconnect next time (the server may have restarted)
            wait_s = self._backoff.next()
            level = logging.ERROR if isinstance(exc, ServerException) else logging.WARNING
            log.log(level, "ClickHouse insert failed (attempt %d, %d rows kept, retry in %.1fs): %s",
                    self._backoff.failures, self._rows, wait_s, str(exc).splitlines()[0])
            raise SinkBackpressureError(str(exc), retry_after_s=wait_s) from exc
        if self._backoff.failures:
            log.warning("ClickHouse insert succeeded after %d failed attempts", self._backoff.failures)
        self._backoff.reset()
        self._buffers = defaultdict(lambda: defaultdict(list), {
            tp: parts for tp, parts in self._buffers.items() if any(parts.values())})
        return written

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except TRANSIENT_ERRORS:  # a dead connection: nothing left to close
                pass


def clickhouse_sink_runner(settings: Settings, codec: Codec | None = None) -> SinkRunner:
    """The ``camcount sink`` service: ``counts``, ``count-events`` and ``alerts`` into their tables."""
    cfg = settings.sink
    sink = ClickHouseSink(settings.clickhouse, Backoff(cfg.backoff_initial_ms / 1000, cfg.backoff_max_ms / 1000))
    topics = {
        name(settings, COUNTS): (WINDOW_COUNT, WINDOW_OCCUPANCY),
        name(settings, COUNT_EVENTS): INPUT_RECORDS,  # occupancy samples and heartbeats are skipped
        name(settings, ALERTS): (ALERT,),
    }
    return SinkRunner(settings, sink, topics, name(settings, cfg.group_id), codec or default_codec())
