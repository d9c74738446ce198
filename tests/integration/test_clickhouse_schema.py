"""Migrations on the real server (Debian's 18.16 here) and on a current engine (chdb)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.config import Settings
from pipeline.sinks.clickhouse import make_client
from pipeline.sinks.migrations import Features, discover, migrate

TABLES = {"counts", "count_events", "occupancy", "model_comparison", "inference_stats", "alerts",
          "counts_latest", "counts_hourly", "counts_daily", "occupancy_hourly", "schema_migrations",
          "model_audit"}

ANALYST_QUERIES = {
    "hourly": "SELECT camera_id, hour, sum(count) FROM {db}.counts_hourly GROUP BY camera_id, hour ORDER BY hour",
    "balance": "SELECT camera_id, sumIf(count, direction = 'in') - sumIf(count, direction = 'out') AS net "
               "FROM {db}.counts_latest GROUP BY camera_id",
    "peak": "SELECT camera_id, rule, max(occupancy_max) FROM {db}.occupancy FINAL GROUP BY camera_id, rule",
    "comparison": "SELECT candidate_model, cls, avg(p), avg(r) FROM {db}.model_comparison "
                  "ARRAY JOIN class_name AS cls, precision AS p, recall AS r GROUP BY candidate_model, cls",
}


def _window_rows():
    t = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.timezone.utc)
    later = t + dt.timedelta(minutes=1)
    return [
        ("cam", "road", "person", "in", t, later, 3, 1, 0),
        ("cam", "road", "person", "in", t, later, 5, 2, 1),  # re-emitted with a higher version
        ("cam", "road", "person", "out", t, later, 2, 1, 1),
        ("cam", "road", "person", "in", later, later + dt.timedelta(minutes=1), 1, 1, 1),
    ]


def test_migrate_twice_changes_nothing(ch_settings: Settings, clickhouse_version) -> None:
    client = make_client(ch_settings.clickhouse, database="default")
    db = ch_settings.clickhouse.database
    assert migrate(client, db, clickhouse_version) == []  # the fixture already applied all
    assert {r[0] for r in client.execute(f"SHOW TABLES FROM {db}")} == TABLES
    rows = client.execute(f"SELECT number, name FROM {db}.schema_migrations ORDER BY number")
    assert [r[1] for r in rows] == [m.name for m in discover()]


def test_counts_insert_and_read_back_latest_version(ch_settings: Settings) -> None:
    client = make_client(ch_settings.clickhouse)
    client.execute("INSERT INTO counts (camera_id, rule, class_name, direction, window_start, window_end, "
                   "count, version, final) VALUES", _window_rows())
    hourly = client.execute("SELECT direction, count FROM counts_hourly ORDER BY direction")
    assert hourly == [("in", 6), ("out", 2)]  # 5 (latest version) + 1, not 3 + 5 + 1
    for name, sql in ANALYST_QUERIES.items():
        client.execute(sql.format(db=ch_settings.clickhouse.database))


@pytest.mark.parametrize("version, expect", [((18, 16, 1), (False, False, False)), ((24, 8), (True, True, True))])
def test_features_gate_on_version(version, expect) -> None:
    f = Features.for_version(version)
    assert (f.low_cardinality, f.datetime64, f.ttl) == expect


class ChdbRunner:
    """Runs migrations on chdb, the current ClickHouse engine embedded from PyPI."""

    def __init__(self) -> None:
        from chdb import session

        self.session = session.Session()

    def execute(self, query: str, params=None) -> list:
        if params is not None:  # INSERT ... VALUES with rows: render them as literals
            rows = ",".join("(" + ",".join(json.dumps(v) if not isinstance(v, str) else
                                           "'" + v.replace("'", "\\'") + "'" for v in row) + ")"
                            for row in params)
            query = f"{query} {rows}"
        result = self.session.query(query, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        return [tuple(r) for r in json.loads(text)["data"]] if text.strip() else []

    def version(self) -> tuple[int, ...]:
        (v,), = self.execute("SELECT version()")
        return tuple(int(p) for p in v.split(".")[:3])


def test_same_migrations_and_queries_run_on_a_current_engine() -> None:
    runner = ChdbRunner()
    version = runner.version()
    assert version >= (24,), version
    assert migrate(runner, "camcount", version) == [m.name for m in discover()]
    assert migrate(runner, "camcount", version) == []
    ddl = runner.execute("SHOW CREATE TABLE camcount.counts")[0][0]
    assert "LowCardinality(String)" in ddl  # the gated features are really used there
    assert "TTL" in runner.execute("SHOW CREATE TABLE camcount.count_events")[0][0]
    runner.execute("INSERT INTO camcount.counts (camera_id, rule, class_name, direction, window_start, "
                   "window_end, count, version, final) VALUES",
                   [(r[0], r[1], r[2], r[3], r[4].strftime("%Y-%m-%d %H:%M:%S"),
                     r[5].strftime("%Y-%m-%d %H:%M:%S"), *r[6:]) for r in _window_rows()])
    hourly = runner.execute("SELECT direction, toUInt32(count) FROM camcount.counts_hourly ORDER BY direction")
    assert hourly == [("in", 6), ("out", 2)]
    for sql in ANALYST_QUERIES.values():
        runner.execute(sql.format(db="camcount"))
