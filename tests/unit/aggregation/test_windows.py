"""Window arithmetic: bounds, completeness, closing, and the seq range sets."""

from __future__ import annotations

import pytest

from pipeline.aggregation.windows import (
    is_closed,
    is_complete,
    ranges_insert,
    watermark,
    window_bounds,
)


@pytest.mark.parametrize(
    "ts_ms, size_ms, expected",
    [
        (0, 60_000, (0, 60_000)),  # the epoch starts a window
        (59_999, 60_000, (0, 60_000)),  # last ms of the first window
        (60_000, 60_000, (60_000, 120_000)),  # half-open: the end belongs to the next window
        (1_700_000_012_345, 60_000, (1_699_999_980_000, 1_700_000_040_000)),  # a real capture time
        (-1, 60_000, (-60_000, 0)),  # before the epoch floors, not truncates
        (7, 1, (7, 8)),  # 1 ms windows
    ],
)
def test_window_bounds(ts_ms: int, size_ms: int, expected: tuple[int, int]) -> None:
    assert window_bounds(ts_ms, size_ms) == expected


@pytest.mark.parametrize("size_ms", [0, -5])
def test_window_bounds_refuses_empty_windows(size_ms: int) -> None:
    with pytest.raises(ValueError):
        window_bounds(10, size_ms)


def test_watermark_is_stream_time_minus_lateness() -> None:
    assert watermark(100_000, 30_000) == 70_000


@pytest.mark.parametrize(
    "end_ms, stream_time_ms, expected",
    [
        (60_000, None, False),  # nothing seen yet
        (60_000, 59_999, False),  # an event at the window's last ms may still come
        (60_000, 60_000, True),  # an event at the end belongs to the next window
        (60_000, 61_000, True),
    ],
)
def test_is_complete(end_ms: int, stream_time_ms: int | None, expected: bool) -> None:
    assert is_complete(end_ms, stream_time_ms) is expected


@pytest.mark.parametrize(
    "end_ms, watermark_ms, grace_ms, expected",
    [
        (60_000, None, 0, False),  # nothing seen yet
        (60_000, 59_999, 0, False),  # one ms short
        (60_000, 60_000, 0, True),  # reached: final
        (60_000, 60_000, 1, False),  # extra grace keeps it open
        (60_000, 60_001, 1, True),
    ],
)
def test_is_closed(end_ms: int, watermark_ms: int | None, grace_ms: int, expected: bool) -> None:
    assert is_closed(end_ms, watermark_ms, grace_ms) is expected


@pytest.mark.parametrize(
    "ranges, value, expected, added",
    [
        ([], 5, [[5, 5]], True),  # first value
        ([[1, 3]], 4, [[1, 4]], True),  # next in order: extends the last range
        ([[1, 3]], 9, [[1, 3], [9, 9]], True),  # a gap: a new range at the end
        ([[5, 7]], 4, [[4, 7]], True),  # extends a range downwards
        ([[1, 3], [5, 7]], 4, [[1, 7]], True),  # fills the gap: two ranges merge
        ([[1, 3], [9, 9]], 5, [[1, 3], [5, 5], [9, 9]], True),  # out of order, between ranges
        ([[5, 7]], 1, [[1, 1], [5, 7]], True),  # before every range
        ([[1, 3], [7, 9]], 6, [[1, 3], [6, 9]], True),  # joins the range to its right only
        ([[1, 3], [7, 9]], 2, [[1, 3], [7, 9]], False),  # already there: unchanged
        ([[1, 3], [7, 9]], 9, [[1, 3], [7, 9]], False),  # the last value seen
    ],
)
def test_ranges_insert(ranges: list[list[int]], value: int, expected: list[list[int]], added: bool) -> None:
    assert ranges_insert(ranges, value) is added
    assert ranges == expected


def test_ranges_insert_matches_a_set() -> None:
    import random

    rng = random.Random(7)
    ranges: list[list[int]] = []
    seen: set[int] = set()
    for _ in range(2_000):
        value = rng.randint(0, 300)
        assert ranges_insert(ranges, value) is (value not in seen)
        seen.add(value)
    assert [v for lo, hi in ranges for v in range(lo, hi + 1)] == sorted(seen)
    assert all(a[1] + 1 < b[0] for a, b in zip(ranges, ranges[1:]))  # disjoint, not touching
