"""W3C Trace Context ``traceparent`` values for frames (no I/O).

Each frame starts a trace: a random 16-byte trace id and 8-byte span id, sampled flag
set. OpenTelemetry wiring can later take these over as the root span of the frame.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    """``00-<trace id>-<span id>-01``, ids random and never all zero (which the spec forbids)."""
    trace_id = span_id = 0
    while trace_id == 0:
        trace_id = secrets.randbits(128)
    while span_id == 0:
        span_id = secrets.randbits(64)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """``(trace id, span id, flags)`` of a version-00 traceparent, or None if it is not valid."""
    match = _TRACEPARENT.match(value)
    if not match or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[1], match[2], int(match[3], 16)
