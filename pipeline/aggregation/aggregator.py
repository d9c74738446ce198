"""Event-time window aggregation of count events and occupancy samples, per Kafka partition.

``WindowAggregator.apply`` takes one decoded record from ``count-events`` and returns the
window results to publish. It is deterministic: the same records in the same order give
the same results, versions included, whether they arrive live or as a replayed backlog.

Emission policy, per window ``[start, end)`` with stream time S and lateness L:

- nothing while S < end (the window is still filling);
- version 1 when S reaches end (all on-time events are in);
- a new version at once for each event that changes a complete window (a late event;
  a re-delivered one is recognised by its ``event_id`` and changes nothing);
- the final version (``final=True``) when S reaches end + L, or when the camera's stream
  ends (a ``Heartbeat`` with ``end_of_stream``); the window's state is then dropped and
  any later event for it is *too late*: dropped and reported in the result.

Every record advances the stream time, so the per-frame ``Heartbeat`` (and occupancy
samples) keep windows closing while nobody crosses a line.

The state lives in a mapping (a faust table, or a dict in tests) read through
``store``; changes are staged and handed out by ``take_writes()``, one per key however
often a record touched it, so the caller writes each changed key once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pipeline.aggregation import state
from pipeline.aggregation.windows import is_closed, is_complete, watermark, window_bounds
from pipeline.codec import COUNT_EVENT, HEARTBEAT, OCCUPANCY_SAMPLE, WINDOW_COUNT, WINDOW_OCCUPANCY

#: Records the aggregator reads from ``count-events``.
INPUT_RECORDS = (COUNT_EVENT, OCCUPANCY_SAMPLE, HEARTBEAT)

Outcome = Literal["accepted", "duplicate", "too_late", "heartbeat"]


@dataclass(frozen=True)
class WindowSpec:
    """Tumbling windows of ``window_ms``; events up to ``allowed_lateness_ms`` late still count."""

    window_ms: int
    allowed_lateness_ms: int

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.allowed_lateness_ms < 0:
            raise ValueError(f"bad window spec: {self}")


@dataclass(frozen=True)
class Emission:
    """A window result to publish: Avro ``record`` name, Kafka key and value."""

    record: str
    key: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    emissions: tuple[Emission, ...]
    #: For a too-late event: how far its capture time is behind the partition's stream time.
    late_by_ms: int | None = None


class WindowAggregator:
    """Windows of every key on the partitions this worker owns, kept in ``store``."""

    def __init__(self, spec: WindowSpec, store: Mapping[str, Any]) -> None:
        self.spec = spec
        self._store = store
        self._staged: dict[str, dict | None] = {}

    # --- state access: reads see staged writes; nothing touches the store until take_writes

    def _get(self, key: str) -> dict | None:
        return self._staged[key] if key in self._staged else self._store.get(key)

    def _put(self, key: str, record: dict | None) -> None:
        self._staged[key] = record

    def take_writes(self) -> dict[str, dict | None]:
        """State changes since the last call: key -> new record, or None to delete it."""
        writes, self._staged = self._staged, {}
        return writes

    # --- records -------------------------------------------------------------------------

    def apply(self, partition: int, record: str, value: Mapping[str, Any]) -> Result:
        """Apply one decoded record read from ``partition``; returns what to publish."""
        pkey = state.partition_key(partition)
        part = self._get(pkey)
        part = state.new_partition() if part is None else state.check_record(part, pkey, "partition")
        ts_ms = int(value["capture_ts_ms"])
        advanced = part["stream_time_ms"] is None or ts_ms > part["stream_time_ms"]
        if advanced:
            part["stream_time_ms"] = ts_ms
        emissions: list[Emission] = []
        late_by_ms = None
        if record == HEARTBEAT:
            outcome: Outcome = "heartbeat"
        elif record in (COUNT_EVENT, OCCUPANCY_SAMPLE):
            outcome = self._add(part, record, value, emissions)
            if outcome == "too_late":
                late_by_ms = part["stream_time_ms"] - ts_ms
        else:
            raise ValueError(f"the aggregator does not read {record} records")
        self._advance(part, emissions)
        end_of_stream = record == HEARTBEAT and bool(value.get("end_of_stream"))
        if end_of_stream:
            self._end_stream(part, value["camera_id"], ts_ms, emissions)
        if advanced or emissions or end_of_stream or outcome == "accepted":
            self._put(pkey, part)
        return Result(outcome, tuple(emissions), late_by_ms)

    def _add(self, part: dict, record: str, value: Mapping[str, Any], out: list[Emission]) -> Outcome:
        camera = value["camera_id"]
        start, end = window_bounds(int(value["capture_ts_ms"]), self.spec.window_ms)
        closed_before = part["closed_before_ms"].get(camera)
        if self._closed(part, end) or (closed_before is not None and end <= closed_before):
            return "too_late"
        if record == COUNT_EVENT:
            kind: state.Kind = "count"
            key = state.count_key(camera, value["rule"], value["class_name"], value["direction"])
        else:
            kind = "occupancy"
            key = state.occupancy_key(camera, value["rule"], value["class_name"])
        rec = self._get(key)
        if rec is None:
            rec = state.new_key_record(kind, camera, value["rule"], value["class_name"],
                                       value["direction"] if kind == "count" else None)
        else:
            rec = state.check_record(rec, key, kind)
        window = rec["windows"].setdefault(str(start), state.new_window(kind))
        if kind == "count":
            changed = state.add_count(window, value["event_id"])
        else:
            changed = state.add_sample(window, value["stream_id"], int(value["seq"]), int(value["occupancy"]))
        if not changed:
            return "duplicate"
        if is_complete(end, part["stream_time_ms"]):  # a late event: re-emit at once
            out.append(self._emit(rec, start, window, final=False))
        self._save_key(part, key, rec)
        return "accepted"

    # --- watermark -----------------------------------------------------------------------

    def _closed(self, part: dict, end_ms: int) -> bool:
        stream_time = part["stream_time_ms"]
        wm = None if stream_time is None else watermark(stream_time, self.spec.allowed_lateness_ms)
        return is_closed(end_ms, wm)

    def _advance(self, part: dict, out: list[Emission]) -> None:
        """Emit windows that became complete, finalise those that closed, forget closed cameras."""
        stream_time = part["stream_time_ms"]
        next_due = part.get("next_due_ms")
        if next_due is not None and stream_time < next_due:
            return  # the common case: nothing to emit, no scan of the keys
        due = sorted((t, k) for k, t in part["keys"].items() if t <= stream_time)
        for _, key in due:
            rec = self._load(key)
            for start in sorted(rec["windows"], key=int):
                window, end = rec["windows"][start], int(start) + self.spec.window_ms
                if self._closed(part, end):
                    out.append(self._emit(rec, int(start), window, final=True))
                    del rec["windows"][start]
                elif window["version"] == 0 and is_complete(end, stream_time):
                    out.append(self._emit(rec, int(start), window, final=False))
            self._save_key(part, key, rec)
        wm = watermark(stream_time, self.spec.allowed_lateness_ms)
        for camera, closed_before in list(part["closed_before_ms"].items()):
            if closed_before <= wm:
                del part["closed_before_ms"][camera]
        triggers = list(part["keys"].values()) + [c + self.spec.allowed_lateness_ms
                                                  for c in part["closed_before_ms"].values()]
        part["next_due_ms"] = min(triggers, default=None)

    def _end_stream(self, part: dict, camera: str, ts_ms: int, out: list[Emission]) -> None:
        """The camera's stream ended: every open window of it is final now."""
        closed_before = window_bounds(ts_ms, self.spec.window_ms)[1]
        for key in sorted(part["keys"]):
            rec = self._load(key)
            if rec["camera_id"] != camera:
                continue
            for start in sorted(rec["windows"], key=int):
                out.append(self._emit(rec, int(start), rec["windows"][start], final=True))
                closed_before = max(closed_before, int(start) + self.spec.window_ms)
            rec["windows"].clear()
            self._save_key(part, key, rec)
        previous = part["closed_before_ms"].get(camera, closed_before)
        part["closed_before_ms"][camera] = max(previous, closed_before)
        forget_at = part["closed_before_ms"][camera] + self.spec.allowed_lateness_ms
        if part.get("next_due_ms") is None or forget_at < part["next_due_ms"]:
            part["next_due_ms"] = forget_at

    # --- helpers -------------------------------------------------------------------------

    def _load(self, key: str) -> dict:
        kind = "count" if key.startswith('["count"') else "occupancy"
        return state.check_record(self._get(key), key, kind)

    def _emit(self, rec: dict, start_ms: int, window: dict, final: bool) -> Emission:
        window["version"] += 1
        window["dirty"] = False
        value = state.window_value(rec, start_ms, start_ms + self.spec.window_ms, window, final)
        return Emission(WINDOW_COUNT if rec["kind"] == "count" else WINDOW_OCCUPANCY, rec["camera_id"], value)

    def _save_key(self, part: dict, key: str, rec: dict) -> None:
        """Store the key's record and when it next needs attention (or drop it when empty)."""
        if not rec["windows"]:
            self._put(key, None)
            part["keys"].pop(key, None)
            return
        self._put(key, rec)
        due = min(int(start) + self.spec.window_ms + (self.spec.allowed_lateness_ms if w["version"] else 0)
                  for start, w in rec["windows"].items())
        part["keys"][key] = due
        if part.get("next_due_ms") is None or due < part["next_due_ms"]:
            part["next_due_ms"] = due
