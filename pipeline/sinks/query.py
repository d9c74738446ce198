"""Read-side helpers for operators: per-window counts of a camera, as a printable table.

Queries go through the ``counts_latest`` view (the highest version of each window) and
take every value as a query parameter; only the database name is spliced in, after it is
checked to be a plain identifier.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Sequence

from pipeline.exceptions import ConfigError
from pipeline.sinks.migrations import SqlRunner

COUNT_COLUMNS = ("window_start", "rule", "class_name", "direction", "count", "version", "final")
_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(text: str, now_ms: int) -> int:
    """Epoch ms from ``30m`` / ``2h`` / ``1d`` (that long before ``now_ms``) or an ISO 8601 time (UTC if no zone)."""
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now_ms - int(m.group(1)) * _UNIT_MS[m.group(2)]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{text!r}: expected a duration like 30m, 2h, 1d or a time like 2024-05-01T10:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _database(database: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise ConfigError(f"clickhouse.database: {database!r} is not a plain identifier")
    return database


def query_counts(client: SqlRunner, database: str, camera_id: str, since_ms: int, until_ms: int,
                 rule: str | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``COUNT_COLUMNS`` for windows of ``camera_id`` starting in ``[since_ms, until_ms)``."""
    sql = (
        f"SELECT {', '.join(COUNT_COLUMNS)} FROM {_database(database)}.counts_latest"
        " WHERE camera_id = %(camera_id)s"
        " AND window_start >= toDateTime(%(since_s)s, 'UTC') AND window_start < toDateTime(%(until_s)s, 'UTC')"
    )
    params: dict[str, Any] = {"camera_id": camera_id, "since_s": since_ms // 1000, "until_s": -(-until_ms // 1000)}
    if rule is not None:
        sql += " AND rule = %(rule)s"
        params["rule"] = rule
    sql += " ORDER BY window_start, rule, class_name, direction"
    return client.execute(sql, params)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out)
