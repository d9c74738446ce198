"""Per-interval inference statistics rows (pure window, reporter with a fake writer)."""

from __future__ import annotations

import pytest

from pipeline.inference.stats import COLUMNS, BatchStat, StatsReporter, StatsWindow

MODEL = ("yolox-nano", "1")


def test_rows_summarise_the_interval_then_start_afresh() -> None:
    window = StatsWindow()
    for size, wait, run, lag in [(8, 10.0, 80.0, 200.0), (4, 30.0, 40.0, 900.0), (8, 20.0, 90.0, 100.0)]:
        window.add(BatchStat(MODEL, size, wait, run, lag))
    window.add_count(MODEL, "errors", 2)
    window.add_count(MODEL, "skipped", 3)
    (row,) = window.rows(ts_ms=1_000, interval_s=2.0, worker_id="w1", idle_model=MODEL)
    assert set(row) == set(COLUMNS)
    assert (row["batches"], row["frames"], row["errors"], row["skipped"], row["batch_size_max"]) == (3, 20, 2, 3, 8)
    assert row["batch_size_mean"] == pytest.approx(20 / 3)
    assert row["frames_per_s"] == 10.0
    assert row["inference_ms_p50"] == 80.0 and row["lag_ms_max"] == 900.0
    (idle,) = window.rows(ts_ms=2_000, interval_s=2.0, worker_id="w1", idle_model=MODEL)
    assert (idle["batches"], idle["frames"], idle["frames_per_s"]) == (0, 0, 0.0)


class FlakyWriter:
    """Fails the first ``failures`` inserts, then keeps what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[list[dict]] = []

    def __call__(self, rows: list[dict]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("ClickHouse is down")
        self.written.append(rows)


def test_failed_inserts_are_kept_and_retried_at_the_next_interval() -> None:
    writer = FlakyWriter(failures=2)
    reporter = StatsReporter("w1", 60.0, writer, lambda: MODEL, backlog_rows=2)
    reporter.record(BatchStat(MODEL, 8, 1.0, 80.0, 5.0))
    for _ in range(3):  # fail, fail (the oldest row is dropped: backlog of 2), succeed
        reporter.report()
    assert len(writer.written) == 1 and len(writer.written[0]) == 2
    assert reporter.totals()["stats_rows_dropped"] == 1
