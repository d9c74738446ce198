"""ClickHouse goes down in the middle of a run and comes back: nothing lost, nothing doubled.

The shared server serves everybody else, so the outage happens on a private, throwaway
server of this test's own (``ThrowawayClickHouse``), killed and restarted on its ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.sinks.clickhouse import make_client
from pipeline.sinks.migrations import migrate
from pipeline.sinks.throwaway import ThrowawayClickHouse
from tests.conftest import with_overrides
from tests.integration.test_sink import T0_MS, count_event, counts_final, fast, running_sink, wait_for, window_count
from tests.kafka_helpers import produce


@pytest.fixture
def private_server() -> Iterator[ThrowawayClickHouse]:
    server = ThrowawayClickHouse()
    try:
        yield server
    finally:
        server.close()


def test_outage_mid_run_loses_nothing(kafka_settings: Settings, private_server: ThrowawayClickHouse) -> None:
    version = private_server.start()
    migrate(make_client(private_server.config(), database="default"), "outage", version)
    settings = fast(with_overrides(kafka_settings, clickhouse=private_server.config("outage").model_dump()))
    counts_topic = topics.name(settings, topics.COUNTS)
    events_topic = topics.name(settings, topics.COUNT_EVENTS)
    client = make_client(settings.clickhouse)

    def n_events() -> int:
        return client.execute("SELECT count() FROM count_events FINAL")[0][0]

    # Before: windows 0..19 at version 1 (not final), events 0..99.
    produce(settings, counts_topic, [window_count("cam-a", T0_MS + i * 60_000, i, 1, False) for i in range(20)])
    produce(settings, events_topic, [count_event("cam-a", i, T0_MS + i * 100) for i in range(100)])
    with running_sink(settings) as runner:
        assert wait_for(lambda: len(counts_final(settings)()), 20) == 20
        assert wait_for(n_events, 100) == 100

        private_server.stop(kill=True)
        # During: windows 0..19 re-emitted (version 2, final, new counts), 20..39 new, events 100..199.
        produce(settings, counts_topic, [window_count("cam-a", T0_MS + i * 60_000, i + 1000, 2, True)
                                         for i in range(40)])
        produce(settings, events_topic, [count_event("cam-a", i, T0_MS + i * 100) for i in range(100, 200)])
        deadline = time.monotonic() + 30
        while runner.stats["flush_retries"] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert runner.stats["flush_retries"] >= 3  # it tried, backed off, and kept the rows

        private_server.start()
        client = make_client(settings.clickhouse)
        expected = [("cam-a", "in", T0_MS + i * 60_000, i + 1000, 2, 1) for i in range(40)]
        assert wait_for(counts_final(settings), expected, timeout_s=90) == expected
        assert wait_for(n_events, 200) == 200
    assert client.execute("SELECT uniqExact(event_id), min(seq), max(seq) FROM count_events") == [(200, 0, 199)]

