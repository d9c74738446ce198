"""The ``alerts tail`` line format, and the row an Alert becomes in ClickHouse ``alerts``."""

from __future__ import annotations

import pytest

from pipeline.alerts.tail import format_alert
from pipeline.codec import ALERT
from pipeline.sinks.migrations import Features
from pipeline.sinks.rows import table_specs

ALERT_VALUE = dict(alert_id="down/cam-b", rule="down", kind="silence", camera_id="cam-b", severity="critical",
                   state="firing", message="down: seconds without a frame on cam-b is 2.2, > 2", value=2.2,
                   threshold=2.0, ts_ms=1_700_000_000_123)


@pytest.mark.parametrize("value, expected", [
    (ALERT_VALUE, "2023-11-14T22:13:20.123Z FIRING   critical silence            cam-b        "
                  "down: seconds without a frame on cam-b is 2.2, > 2 [down/cam-b]"),
    # no camera (a per-model alert): a dash
    ({**ALERT_VALUE, "camera_id": None, "state": "resolved", "kind": "inference_latency", "ts_ms": 5},
     "1970-01-01T00:00:00.005Z RESOLVED critical inference_latency  -            "
     "down: seconds without a frame on cam-b is 2.2, > 2 [down/cam-b]"),
])
def test_format_alert(value: dict, expected: str) -> None:
    assert format_alert(value) == expected


@pytest.mark.parametrize("datetime64, ts", [(True, 1_700_000_000_123), (False, 1_700_000_000)])
def test_alert_row_follows_the_server(datetime64: bool, ts: int) -> None:
    spec = table_specs(Features(low_cardinality=True, datetime64=datetime64, ttl=True))[ALERT]
    row = spec.to_row(ALERT_VALUE)
    assert spec.table == "alerts" and len(row) == len(spec.columns)
    assert dict(zip(spec.columns, row)) == {**ALERT_VALUE, "ts": ts}
