"""Window arithmetic: bounds, completeness, closing, and the seq range sets."""

from __future__ import annotations

import pytest

from pipeline.aggregation.windows import (
    is_closed,
    is_complete,
    ranges_add,
    ranges_contain,
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
    "ranges, value, expected",
    [
        ([], 5, [[5, 5]]),  # first value
        ([[1, 3]], 4, [[1, 4]]),  # extends a range upwards
        ([[5, 7]], 4, [[4, 7]]),  # extends a range downwards
        ([[1, 3], [5, 7]], 4, [[1, 7]]),  # fills the gap: two ranges merge
        ([[1, 3]], 9, [[1, 3], [9, 9]]),  # a new range after a gap
        ([[5, 7]], 1, [[1, 1], [5, 7]]),  # a new range before
        ([[1, 3]], 2, [[1, 3]]),  # already there: unchanged
    ],
)
def test_ranges_add(ranges: list[list[int]], value: int, expected: list[list[int]]) -> None:
    before = [list(r) for r in ranges]
    assert ranges_add(ranges, value) == expected
    assert ranges == before  # the input is not modified


@pytest.mark.parametrize(
    "value, expected",
    [(0, False), (1, True), (3, True), (4, False), (9, True), (10, False)],
)
def test_ranges_contain(value: int, expected: bool) -> None:
    assert ranges_contain([[1, 3], [9, 9]], value) is expected
