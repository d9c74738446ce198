"""Event-time window arithmetic: plain functions of integer milliseconds, no I/O, no clock.

Terms, as used across the aggregation package:

- *stream time*: the newest capture time seen on a Kafka partition so far.
- *watermark*: stream time minus the allowed lateness. An event whose window ends at or
  before the watermark is too late: the window is closed (final) and no longer changes.
- A window ``[start_ms, end_ms)`` is *complete* once the stream time reaches ``end_ms``
  (every on-time event is in), and *closed* once the watermark reaches ``end_ms``.

Nothing here looks at the wall clock, so a replayed backlog closes windows exactly where
live traffic did.
"""

from __future__ import annotations

from bisect import bisect_left


def window_bounds(ts_ms: int, size_ms: int) -> tuple[int, int]:
    """The tumbling window ``[start, end)`` holding ``ts_ms``, aligned to the epoch."""
    if size_ms <= 0:
        raise ValueError(f"size_ms must be positive, got {size_ms}")
    start = ts_ms - ts_ms % size_ms  # Python's % floors, so negative times work too
    return start, start + size_ms


def watermark(stream_time_ms: int, allowed_lateness_ms: int) -> int:
    """The watermark of a partition whose newest capture time is ``stream_time_ms``."""
    return stream_time_ms - allowed_lateness_ms


def is_complete(end_ms: int, stream_time_ms: int | None) -> bool:
    """True once every on-time event of a window ending at ``end_ms`` has been seen."""
    return stream_time_ms is not None and stream_time_ms >= end_ms


def is_closed(end_ms: int, watermark_ms: int | None, grace_ms: int = 0) -> bool:
    """True once a window ending at ``end_ms`` is final: later events for it are dropped.

    ``watermark_ms`` already has the allowed lateness subtracted; ``grace_ms`` is any
    further allowance (0 in the aggregator).
    """
    return watermark_ms is not None and watermark_ms >= end_ms + grace_ms


# --- sets of integers as sorted, disjoint, non-adjacent [lo, hi] ranges --------------------
# Occupancy samples come one per frame with consecutive ``seq``; a window's worth of them
# is usually one range, which keeps the de-duplication state small in the changelog.

Ranges = list[list[int]]


def ranges_insert(ranges: Ranges, value: int) -> bool:
    """Add ``value`` to ``ranges`` in place; False (no change) if it was already there.

    In-order values (the usual case: one sample per frame) extend the last range in O(1).
    """
    if not ranges or value > ranges[-1][1] + 1:
        ranges.append([value, value])
        return True
    if value == ranges[-1][1] + 1:
        ranges[-1][1] = value
        return True
    i = bisect_left(ranges, [value + 1, value + 1]) - 1  # last range with lo <= value
    if i >= 0 and value <= ranges[i][1]:
        return False
    joins_left = i >= 0 and ranges[i][1] == value - 1
    joins_right = i + 1 < len(ranges) and ranges[i + 1][0] == value + 1
    if joins_left and joins_right:
        ranges[i][1] = ranges[i + 1][1]
        del ranges[i + 1]
    elif joins_left:
        ranges[i][1] = value
    elif joins_right:
        ranges[i + 1][0] = value
    else:
        ranges.insert(i + 1, [value, value])
    return True
