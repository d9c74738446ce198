"""Zone occupancy and enter/exit events with dwell time.

A track's inside/outside state flips only after ``min_frames`` consecutive
observations that disagree with it, so a box jittering on the edge does not
produce a stream of enter/exit pairs. Occupancy counts tracks in the inside state,
including ones briefly unseen, so it does not dip every time someone is occluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.counting import table
from pipeline.counting.geometry import anchor_points, points_in_polygon
from pipeline.counting.rules import ZoneRule, class_allowed
from pipeline.counting.tracker import Tracks

ZoneDirection = Literal["enter", "exit"]

_SCHEMA: table.Schema = {
    "track_id": (np.int64, ()),
    "class_id": (np.int64, ()),
    "inside": (np.bool_, ()),
    "run": (np.int64, ()),  # consecutive observations disagreeing with ``inside``
    "run_start_ts_ms": (np.int64, ()),
    "enter_ts_ms": (np.int64, ()),  # first inside observation of the current visit
    "last_inside_ts_ms": (np.int64, ()),
    "visits": (np.int64, ()),
}
_DEFAULTS = {
    "class_id": -1,
    "inside": False,
    "run": 0,
    "run_start_ts_ms": 0,
    "enter_ts_ms": 0,
    "last_inside_ts_ms": 0,
    "visits": 0,
}


@dataclass(frozen=True)
class ZoneTransition:
    """A track entering or leaving a zone. ``visit`` numbers its entries from 1;
    ``dwell_ms`` (exits only) runs from its first to its last inside observation."""

    track_id: int
    class_id: int
    direction: ZoneDirection
    visit: int
    dwell_ms: int | None = None


@dataclass(frozen=True)
class Occupancy:
    """Tracks inside a zone: ``total`` and per class (every filtered class listed, 0 included)."""

    total: int
    by_class: dict[int, int]


class ZoneCounter:
    """Applies one ``ZoneRule`` to the tracks of successive frames."""

    def __init__(self, rule: ZoneRule) -> None:
        self.rule = rule
        self._polygon = np.asarray(rule.polygon, np.float64)
        self._cols = table.empty(_SCHEMA)

    def __len__(self) -> int:
        return table.num_rows(self._cols)

    def update(self, tracks: Tracks, capture_ts_ms: int) -> list[ZoneTransition]:
        """Enter/exit events caused by this frame's observations, in track id order."""
        keep = class_allowed(tracks.class_ids, self.rule.classes)
        ids, classes = tracks.track_ids[keep], tracks.class_ids[keep]
        in_poly = points_in_polygon(anchor_points(tracks.xyxy[keep], self.rule.anchor), self._polygon)
        cols, idx = table.rows_for_ids(self._cols, ids, _DEFAULTS)
        inside, run = cols["inside"][idx], cols["run"][idx]
        agrees = in_poly == inside
        run_start = np.where(~agrees & (run == 0), capture_ts_ms, cols["run_start_ts_ms"][idx])
        run = np.where(agrees, 0, run + 1)
        flip = run >= self.rule.min_frames
        enter = flip & ~inside
        enter_ts = np.where(enter, run_start, cols["enter_ts_ms"][idx])
        last_inside = cols["last_inside_ts_ms"][idx]
        dwell = last_inside - enter_ts
        last_inside = np.where((inside & in_poly) | enter, capture_ts_ms, last_inside)
        visits = cols["visits"][idx] + enter
        cols["class_id"][idx] = classes
        cols["inside"][idx] = inside ^ flip
        cols["run"][idx] = np.where(flip, 0, run)
        cols["run_start_ts_ms"][idx] = run_start
        cols["enter_ts_ms"][idx] = enter_ts
        cols["last_inside_ts_ms"][idx] = last_inside
        cols["visits"][idx] = visits
        self._cols = cols
        return [
            ZoneTransition(
                int(ids[i]),
                int(classes[i]),
                "enter" if enter[i] else "exit",
                int(visits[i]),
                None if enter[i] else int(dwell[i]),
            )
            for i in np.flatnonzero(flip)
        ]

    def forget(self, track_ids: np.ndarray) -> list[ZoneTransition]:
        """Drop removed tracks; those still inside exit now, dwell up to their last sighting."""
        cols = self._cols
        gone = np.isin(cols["track_id"], np.asarray(track_ids, np.int64))
        exits = np.flatnonzero(gone & cols["inside"])
        events = [
            ZoneTransition(
                int(cols["track_id"][i]),
                int(cols["class_id"][i]),
                "exit",
                int(cols["visits"][i]),
                int(cols["last_inside_ts_ms"][i] - cols["enter_ts_ms"][i]),
            )
            for i in exits
        ]
        self._cols = table.take(cols, ~gone)
        return events

    def occupancy(self) -> Occupancy:
        """Tracks currently inside, by their latest class."""
        inside_classes = self._cols["class_id"][self._cols["inside"]]
        by_class = {c: 0 for c in sorted(self.rule.classes or ())}
        for class_id, count in zip(*np.unique(inside_classes, return_counts=True), strict=True):
            by_class[int(class_id)] = int(count)
        return Occupancy(total=len(inside_classes), by_class=dict(sorted(by_class.items())))

    def to_state(self) -> dict[str, Any]:
        return table.to_json(self._cols)

    @classmethod
    def from_state(cls, rule: ZoneRule, state: dict[str, Any]) -> ZoneCounter:
        counter = cls(rule)
        counter._cols = table.from_json(state, _SCHEMA, f"zone {rule.name!r} state")
        return counter
