"""Operator query helpers: time arguments and the printed table."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipeline.exceptions import ConfigError
from pipeline.sinks.query import format_table, parse_time_ms, query_counts

NOW_MS = 1_700_000_000_000


@pytest.mark.parametrize(
    "text, expected",
    [
        ("30m", NOW_MS - 30 * 60_000),  # relative: that long ago
        ("2h", NOW_MS - 2 * 3_600_000),
        ("1d", NOW_MS - 86_400_000),
        ("45s", NOW_MS - 45_000),
        ("2023-11-14T22:13:20", NOW_MS),  # ISO without a zone is UTC
        ("2023-11-14T22:13:20Z", NOW_MS),
        ("2023-11-14T23:13:20+01:00", NOW_MS),  # an explicit zone is honoured
    ],
)
def test_parse_time_ms(text: str, expected: int) -> None:
    assert parse_time_ms(text, NOW_MS) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", ""])
def test_parse_time_ms_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time_ms(text, NOW_MS)


def test_format_table_aligns_and_right_aligns_numbers() -> None:
    rows = [(datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc), "door", 7), (datetime(2024, 5, 1, 10, 1), "gate", 12)]
    assert format_table(("window_start", "rule", "count"), rows).splitlines() == [
        "window_start         rule  count",
        "-------------------  ----  -----",
        "2024-05-01 10:00:00  door      7",
        "2024-05-01 10:01:00  gate     12",
    ]


class Recorder:
    """Captures the query text and parameters (an SqlRunner)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict | None]] = []

    def execute(self, query: str, params: dict | None = None) -> list:
        self.calls.append((query, params))
        return []


def test_query_counts_passes_values_as_parameters() -> None:
    runner = Recorder()
    query_counts(runner, "camcount", "cam'; DROP TABLE counts; --", 60_500, 120_000, rule="door")
    (sql, params), = runner.calls
    assert "DROP" not in sql and "%(camera_id)s" in sql and "%(rule)s" in sql
    assert params == {"camera_id": "cam'; DROP TABLE counts; --", "since_s": 60, "until_s": 120, "rule": "door"}


def test_query_counts_refuses_a_database_that_is_not_an_identifier() -> None:
    with pytest.raises(ConfigError):
        query_counts(Recorder(), "camcount; DROP", "c", 0, 1)
