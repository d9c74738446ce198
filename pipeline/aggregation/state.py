"""The aggregator's state as plain JSON-able records, and the pure updates on one window.

Three kinds of record live in the state store (a faust table with a changelog, or a dict
in tests), each under a string key:

- a *partition* record: the partition's stream time, the keys with open windows (and
  when each next needs attention), and cameras whose stream ended early;
- a *count* record per (camera, rule, class, direction): its open windows, each with the
  count, the event ids already counted (de-duplication) and the last emitted version;
- an *occupancy* record per (camera, rule, class): per window the samples, sum and max of
  the occupancy, and the (stream_id, seq) ranges already seen.

A window is dropped from its record once final, and a record once it has no windows, so
the state holds only what can still change.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from typing import Any, Literal, Mapping

from pipeline.aggregation.exceptions import AggregationStateError
from pipeline.aggregation.windows import ranges_insert

#: Bumped when the layout of the records changes; a record of another version is refused.
STATE_VERSION = 1

Kind = Literal["count", "occupancy"]
Record = dict[str, Any]
Window = dict[str, Any]


def partition_key(partition: int) -> str:
    return json.dumps(["partition", partition])


def count_key(camera_id: str, rule: str, class_name: str, direction: str) -> str:
    return json.dumps(["count", camera_id, rule, class_name, direction], separators=(",", ":"))


def occupancy_key(camera_id: str, rule: str, class_name: str) -> str:
    return json.dumps(["occupancy", camera_id, rule, class_name], separators=(",", ":"))


def new_partition() -> Record:
    # keys: state key -> stream time at which its earliest window next needs attention.
    # closed_before_ms: camera -> windows ending at or before this are final (end of stream).
    # next_due_ms: no key or camera needs attention before this stream time (None: none at all).
    return {"v": STATE_VERSION, "stream_time_ms": None, "keys": {}, "closed_before_ms": {}, "next_due_ms": None}


def new_key_record(kind: Kind, camera_id: str, rule: str, class_name: str, direction: str | None) -> Record:
    return {"v": STATE_VERSION, "kind": kind, "camera_id": camera_id, "rule": rule,
            "class_name": class_name, "direction": direction, "windows": {}}


def check_record(record: Any, key: str, kind: str) -> Record:
    """``record`` if it is a state record of ``kind`` this code understands, else raise."""
    if not isinstance(record, dict) or record.get("v") != STATE_VERSION:
        version = record.get("v") if isinstance(record, dict) else type(record).__name__
        raise AggregationStateError(f"state {key}: expected version {STATE_VERSION}, got {version!r}")
    if kind != "partition" and record.get("kind") != kind:
        raise AggregationStateError(f"state {key}: expected a {kind} record, got {record.get('kind')!r}")
    return record


def new_window(kind: Kind) -> Window:
    # version: last version emitted (0 = never); dirty: content changed since then.
    if kind == "count":
        return {"count": 0, "ids": [], "version": 0, "dirty": False}
    return {"samples": 0, "sum": 0, "max": 0, "seqs": {}, "version": 0, "dirty": False}


def add_count(window: Window, event_id: str) -> bool:
    """Count ``event_id`` in the window; False (and no change) if it was counted before."""
    ids = window["ids"]
    i = bisect_left(ids, event_id)
    if i < len(ids) and ids[i] == event_id:
        return False
    ids.insert(i, event_id)
    window["count"] += 1
    window["dirty"] = True
    return True


def add_sample(window: Window, stream_id: str, seq: int, occupancy: int) -> bool:
    """Add one occupancy sample; False (and no change) if (stream_id, seq) was seen before."""
    if not ranges_insert(window["seqs"].setdefault(stream_id, []), seq):
        return False
    window["samples"] += 1
    window["sum"] += occupancy
    window["max"] = max(window["max"], occupancy)
    window["dirty"] = True
    return True


def window_value(record: Mapping[str, Any], start_ms: int, end_ms: int, window: Mapping[str, Any],
                 final: bool) -> dict[str, Any]:
    """The ``WindowCount`` or ``WindowOccupancy`` value of a window at its current version."""
    common = {"camera_id": record["camera_id"], "rule": record["rule"], "class_name": record["class_name"],
              "window_start_ms": start_ms, "window_end_ms": end_ms}
    if record["kind"] == "count":
        return {**common, "direction": record["direction"], "count": window["count"],
                "version": window["version"], "final": final}
    return {**common, "samples": window["samples"], "occupancy_max": window["max"],
            "occupancy_mean": window["sum"] / window["samples"] if window["samples"] else 0.0,
            "version": window["version"], "final": final}
