"""Decoded Avro records -> ClickHouse rows: which table, which columns, which values. No I/O.

Times go in as integers (clickhouse-driver's fast path): ``DateTime`` columns take epoch
seconds, ``DateTime64(3)`` columns epoch milliseconds; which one ``capture_time`` is
depends on the server (see ``migrations.Features``). Window bounds are whole seconds in
the warehouse, so windows should be a whole number of seconds long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from pipeline.codec import ALERT, COUNT_EVENT, WINDOW_COUNT, WINDOW_OCCUPANCY
from pipeline.sinks.migrations import Features

Row = tuple[Any, ...]

#: Records that have a table.
RECORDS = frozenset({WINDOW_COUNT, WINDOW_OCCUPANCY, COUNT_EVENT, ALERT})


@dataclass(frozen=True)
class TableSpec:
    """Where one Avro record goes: ``table`` (columns ``columns``), one row per record."""

    table: str
    columns: tuple[str, ...]
    to_row: Callable[[Mapping[str, Any]], Row]

    def insert_sql(self, database: str) -> str:
        return f"INSERT INTO {database}.{self.table} ({', '.join(self.columns)}) VALUES"


def _window_count(v: Mapping[str, Any]) -> Row:
    return (v["camera_id"], v["rule"], v["class_name"], v["direction"], v["window_start_ms"] // 1000,
            v["window_end_ms"] // 1000, v["count"], v["version"], int(v["final"]))


def _window_occupancy(v: Mapping[str, Any]) -> Row:
    return (v["camera_id"], v["rule"], v["class_name"], v["window_start_ms"] // 1000, v["window_end_ms"] // 1000,
            v["samples"], v["occupancy_max"], v["occupancy_mean"], v["version"], int(v["final"]))


def _count_event(capture_time: Callable[[int], int]) -> Callable[[Mapping[str, Any]], Row]:
    def row(v: Mapping[str, Any]) -> Row:
        return (v["event_id"], v["camera_id"], v["stream_id"], v["seq"], v["capture_ts_ms"],
                capture_time(v["capture_ts_ms"]), v["rule"], v["rule_kind"], v["class_name"], v["direction"],
                v["track_id"], v["dwell_ms"], v["model_name"], v["model_version"])

    return row


def _alert(ts_time: Callable[[int], int]) -> Callable[[Mapping[str, Any]], Row]:
    def row(v: Mapping[str, Any]) -> Row:
        return (v["alert_id"], v["rule"], v["kind"], v["camera_id"], v["severity"], v["state"], v["message"],
                v["value"], v["threshold"], v["ts_ms"], ts_time(v["ts_ms"]))

    return row


def table_specs(features: Features) -> dict[str, TableSpec]:
    """Record name -> its table, for a server with ``features``."""
    capture_time = (lambda ms: ms) if features.datetime64 else (lambda ms: ms // 1000)
    return {
        WINDOW_COUNT: TableSpec(
            "counts",
            ("camera_id", "rule", "class_name", "direction", "window_start", "window_end", "count", "version",
             "final"),
            _window_count,
        ),
        WINDOW_OCCUPANCY: TableSpec(
            "occupancy",
            ("camera_id", "rule", "class_name", "window_start", "window_end", "samples", "occupancy_max",
             "occupancy_mean", "version", "final"),
            _window_occupancy,
        ),
        COUNT_EVENT: TableSpec(
            "count_events",
            ("event_id", "camera_id", "stream_id", "seq", "capture_ts_ms", "capture_time", "rule", "rule_kind",
             "class_name", "direction", "track_id", "dwell_ms", "model_name", "model_version"),
            _count_event(capture_time),
        ),
        ALERT: TableSpec(
            "alerts",
            ("alert_id", "rule", "kind", "camera_id", "severity", "state", "message", "value", "threshold", "ts_ms",
             "ts"),
            _alert(capture_time),
        ),
    }
