"""Avro records -> ClickHouse rows, per server features."""

from __future__ import annotations

import pytest

from pipeline.codec import COUNT_EVENT, WINDOW_COUNT, WINDOW_OCCUPANCY
from pipeline.sinks.migrations import Features
from pipeline.sinks.rows import RECORDS, table_specs

OLD = Features.for_version((18, 16, 1))
NEW = Features.for_version((24, 8))

EVENT = dict(event_id="s/1/door/in", camera_id="c", stream_id="s", seq=7, capture_ts_ms=1_700_000_001_234,
             rule="door", rule_kind="line", class_name="person", direction="in", track_id=1, dwell_ms=None,
             model_name="m", model_version="1")


def test_window_count_row() -> None:
    spec = table_specs(OLD)[WINDOW_COUNT]
    value = dict(camera_id="c", rule="door", class_name="car", direction="out", window_start_ms=1_699_999_980_000,
                 window_end_ms=1_700_000_040_000, count=4, version=3, final=True)
    assert spec.table == "counts"
    assert dict(zip(spec.columns, spec.to_row(value))) == {
        "camera_id": "c", "rule": "door", "class_name": "car", "direction": "out", "window_start": 1_699_999_980,
        "window_end": 1_700_000_040, "count": 4, "version": 3, "final": 1}


def test_window_occupancy_row() -> None:
    spec = table_specs(OLD)[WINDOW_OCCUPANCY]
    value = dict(camera_id="c", rule="lobby", class_name="person", window_start_ms=60_000, window_end_ms=120_000,
                 samples=10, occupancy_max=3, occupancy_mean=1.5, version=1, final=False)
    assert spec.table == "occupancy"
    assert spec.to_row(value) == ("c", "lobby", "person", 60, 120, 10, 3, 1.5, 1, 0)


@pytest.mark.parametrize(
    "features, capture_time",
    [
        (OLD, 1_700_000_001),  # DateTime: whole seconds
        (NEW, 1_700_000_001_234),  # DateTime64(3): milliseconds
    ],
)
def test_count_event_capture_time_follows_the_server(features: Features, capture_time: int) -> None:
    spec = table_specs(features)[COUNT_EVENT]
    row = dict(zip(spec.columns, spec.to_row(EVENT)))
    assert row["capture_time"] == capture_time
    assert row["capture_ts_ms"] == 1_700_000_001_234
    assert row["dwell_ms"] is None


def test_every_record_with_a_table_is_listed() -> None:
    assert set(table_specs(OLD)) == RECORDS


def test_insert_sql_names_database_table_and_columns() -> None:
    sql = table_specs(OLD)[WINDOW_COUNT].insert_sql("camcount")
    assert sql.startswith("INSERT INTO camcount.counts (camera_id, rule, ")
    assert sql.endswith(") VALUES")
