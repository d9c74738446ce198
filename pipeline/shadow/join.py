"""Primary and shadow Detections joined by (camera_id, stream_id, seq), windowed per camera.

Pure state, no Kafka: the faust agent (``app.py``) feeds every record to ``Joiner.add``
and writes the ``ModelComparison`` records it returns.

- A record waits for its other side at most ``max_wait_ms`` of event time: it is dropped
  once the camera's watermark (largest ``capture_ts_ms`` seen on either side) is past its
  capture time by more. Primary frames outside the shadow sample simply expire.
- A window ``[start, end)`` of a camera and (primary, candidate) pair is emitted once the
  watermark passes ``end + max_wait_ms`` (no more joins can land in it), or when both
  sides passed the camera's end-of-stream marker.
- Count difference: the same counting rules (``CountingProcessor``) run on the joined
  frames of each side, per candidate; the difference of their count events is summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pipeline.codec import COUNT_EVENT
from pipeline.shadow.comparator import IOU_THRESHOLD, WindowComparison, window_bounds

PRIMARY, SHADOW = "primary", "shadow"
Model = tuple[str, str]
FrameKey = tuple[str, str, int]  # camera_id, stream_id, seq
#: Counts the events of one record for one side: (side key, record) -> number of count events.
CountFn = Callable[[tuple[Model, str], dict[str, Any]], int]


def no_counts(side: tuple[Model, str], record: dict[str, Any]) -> int:
    return 0


@dataclass
class _Pending:
    capture_ts_ms: int
    primary: dict[str, Any] | None = None
    shadow: dict[Model, dict[str, Any]] = field(default_factory=dict)


class Joiner:
    def __init__(self, window_ms: int, max_wait_ms: int, count_events: CountFn = no_counts,
                 class_names: Callable[[Model], Sequence[str]] = lambda model: (),
                 iou_threshold: float = IOU_THRESHOLD) -> None:
        self.window_ms = window_ms
        self.max_wait_ms = max_wait_ms
        self._count = count_events
        self._class_names = class_names
        self._iou = iou_threshold
        self._pending: dict[FrameKey, _Pending] = {}
        self._windows: dict[tuple[str, int, Model, Model], WindowComparison] = {}
        self._watermark: dict[str, int] = {}
        self._ended: dict[str, set[str]] = {}  # camera -> sides past end-of-stream
        self.stats = {"joined": 0, "expired": 0, "late": 0}

    def add(self, side: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one Detections record of ``side``; returns the comparison records now due."""
        camera = record["camera_id"]
        if record.get("end_of_stream", False):
            ended = self._ended.setdefault(camera, set())
            ended.add(side)
            if ended >= {PRIMARY, SHADOW}:
                del self._ended[camera]
                return self._close(camera, everything=True)
            return []
        ts = record["capture_ts_ms"]
        watermark = self._watermark[camera] = max(self._watermark.get(camera, ts), ts)
        if ts < watermark - self.max_wait_ms - self.window_ms:
            self.stats["late"] += 1
            return []
        key = (camera, record["stream_id"], record["seq"])
        entry = self._pending.setdefault(key, _Pending(ts))
        if side == PRIMARY:
            entry.primary = record
            for candidate in list(entry.shadow.values()):
                self._join(record, candidate)
            entry.shadow.clear()
        else:
            if entry.primary is not None:
                self._join(entry.primary, record)
            else:
                entry.shadow[(record["model_name"], record["model_version"])] = record
        return self._close(camera)

    def _join(self, primary: dict[str, Any], candidate: dict[str, Any]) -> None:
        p_model = (primary["model_name"], primary["model_version"])
        c_model = (candidate["model_name"], candidate["model_version"])
        start, end = window_bounds(primary["capture_ts_ms"], self.window_ms)
        key = (primary["camera_id"], start, p_model, c_model)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = WindowComparison(primary["camera_id"], start, end, p_model, c_model)
        diff = self._count((c_model, SHADOW), candidate) - self._count((c_model, PRIMARY), primary)
        window.add(primary, candidate, diff, self._iou)
        self.stats["joined"] += 1

    def _close(self, camera: str, everything: bool = False) -> list[dict[str, Any]]:
        watermark = self._watermark.get(camera)
        if watermark is None:
            return []
        expire_before = watermark + 1 if everything else watermark - self.max_wait_ms
        for key in [k for k, p in self._pending.items() if k[0] == camera and p.capture_ts_ms < expire_before]:
            del self._pending[key]
            self.stats["expired"] += 1
        due = [k for k, w in self._windows.items() if k[0] == camera and (everything or w.end_ms <= expire_before)]
        return [self._windows.pop(k).record(self._class_names(k[2])) for k in sorted(due, key=lambda k: k[1])]

    def flush(self) -> list[dict[str, Any]]:
        """Every open window, as it stands (at shutdown)."""
        out = [w.record(self._class_names(k[2])) for k, w in sorted(self._windows.items(), key=lambda i: i[0][1])]
        self._windows.clear()
        self._pending.clear()
        return out


class RuleCounts:
    """``CountFn`` over ``CountingProcessor``: one processor per (candidate, side), its
    per-camera state kept here, so both sides count exactly the joined frames."""

    def __init__(self, make_processor: Callable[[], Any]) -> None:
        self._make = make_processor
        self._processors: dict[tuple[Model, str], Any] = {}
        self._states: dict[tuple[Model, str, str], Any] = {}

    def __call__(self, side: tuple[Model, str], record: dict[str, Any]) -> int:
        processor = self._processors.get(side)
        if processor is None:
            processor = self._processors[side] = self._make()
        key = (*side, record["camera_id"])
        out = processor.process(record, self._states.get(key))
        if out.duplicate:
            return 0
        self._states[key] = out.state
        return sum(1 for name, _ in out.records if name == COUNT_EVENT)
