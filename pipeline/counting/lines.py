"""Line crossing counts: which tracks crossed a directed segment, and which way.

The decision is a pure function of (previous side, current side, within extent);
this module adds the per-track memory it needs (last side, observations on it,
which directions were already counted) as a columnar table that forgets a track
as soon as the tracker drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.counting import table
from pipeline.counting.geometry import (
    LEFT,
    ON_LINE,
    RIGHT,
    anchor_points,
    crossing_within_extent,
    sides,
    signed_distance,
)
from pipeline.counting.rules import LineRule, class_allowed
from pipeline.counting.tracker import Tracks

Direction = Literal["in", "out"]
# Direction codes: a valid crossing's code is the side it ends on, so RIGHT (+1)
# is "in" (left to right) and LEFT (-1) is "out".
IN_CODE, OUT_CODE, NO_CROSSING = RIGHT, LEFT, 0

_SCHEMA: table.Schema = {
    "track_id": (np.int64, ()),
    "side": (np.int8, ()),  # last side seen off the line; ON_LINE until first seen
    "side_frames": (np.int64, ()),  # observations on that side since arriving there
    "anchor_x": (np.float64, ()),  # anchor when last seen on that side
    "anchor_y": (np.float64, ()),
    "counted_in": (np.bool_, ()),
    "counted_out": (np.bool_, ()),
}
_DEFAULTS = {
    "side": ON_LINE,
    "side_frames": 0,
    "anchor_x": 0.0,
    "anchor_y": 0.0,
    "counted_in": False,
    "counted_out": False,
}


def crossing_codes(prev_sides: np.ndarray, curr_sides: np.ndarray, within_extent: np.ndarray) -> np.ndarray:
    """Vectorised crossing rule: ``IN_CODE``, ``OUT_CODE`` or ``NO_CROSSING`` per track.

    A crossing needs both sides known (off the hysteresis band), different, and the
    move to meet the line inside the segment.
    """
    prev = np.asarray(prev_sides, np.int8)
    curr = np.asarray(curr_sides, np.int8)
    valid = np.asarray(within_extent, bool) & (prev != ON_LINE) & (curr != ON_LINE) & (prev != curr)
    return np.where(valid, curr, NO_CROSSING).astype(np.int8)


def crossing_direction(prev_side: int, curr_side: int, within_extent: bool) -> Direction | None:
    """The crossing rule for one track: ``"in"``, ``"out"`` or None."""
    code = int(crossing_codes(np.array([prev_side]), np.array([curr_side]), np.array([within_extent]))[0])
    return {IN_CODE: "in", OUT_CODE: "out"}.get(code)


@dataclass(frozen=True)
class LineCrossing:
    """One counted crossing of a line rule."""

    track_id: int
    class_id: int
    direction: Direction


class LineCounter:
    """Applies one ``LineRule`` to the tracks of successive frames."""

    def __init__(self, rule: LineRule) -> None:
        self.rule = rule
        self._cols = table.empty(_SCHEMA)

    def __len__(self) -> int:
        """Tracks remembered, to check that dropped tracks are forgotten."""
        return table.num_rows(self._cols)

    def update(self, tracks: Tracks) -> list[LineCrossing]:
        """Count crossings made by tracks seen in this frame (in track id order).

        A track counts when it leaves a side it was seen on for ``min_frames``
        observations, crosses within the segment, passes the class filter, and has
        not yet counted in that direction.
        """
        rule = self.rule
        anchors = anchor_points(tracks.xyxy, rule.anchor)
        curr = sides(signed_distance(anchors, rule.start, rule.end), rule.hysteresis)
        cols, idx = table.rows_for_ids(self._cols, tracks.track_ids, _DEFAULTS)
        prev, frames = cols["side"][idx], cols["side_frames"][idx]
        last = np.stack([cols["anchor_x"][idx], cols["anchor_y"][idx]], axis=1)
        switched = (prev != ON_LINE) & (curr != ON_LINE) & (prev != curr)
        within = np.zeros(len(idx), bool)
        within[switched] = crossing_within_extent(last[switched], anchors[switched], rule.start, rule.end)
        codes = crossing_codes(prev, curr, within)
        eligible = (frames >= rule.min_frames) & class_allowed(tracks.class_ids, rule.classes)
        count_in = eligible & (codes == IN_CODE) & ~cols["counted_in"][idx]
        count_out = eligible & (codes == OUT_CODE) & ~cols["counted_out"][idx]
        seen = curr != ON_LINE
        cols["side_frames"][idx] = np.where(seen, np.where(curr == prev, frames + 1, 1), frames)
        cols["side"][idx] = np.where(seen, curr, prev)
        cols["anchor_x"][idx] = np.where(seen, anchors[:, 0], last[:, 0])
        cols["anchor_y"][idx] = np.where(seen, anchors[:, 1], last[:, 1])
        cols["counted_in"][idx] |= count_in
        cols["counted_out"][idx] |= count_out
        self._cols = cols
        hits = np.flatnonzero(count_in | count_out)
        return [
            LineCrossing(int(tracks.track_ids[i]), int(tracks.class_ids[i]), "in" if count_in[i] else "out")
            for i in hits
        ]

    def forget(self, track_ids: np.ndarray) -> None:
        """Drop the memory of tracks the tracker removed, so state stays bounded."""
        self._cols = table.drop_ids(self._cols, track_ids)

    def to_state(self) -> dict[str, Any]:
        return table.to_json(self._cols)

    @classmethod
    def from_state(cls, rule: LineRule, state: dict[str, Any]) -> LineCounter:
        counter = cls(rule)
        counter._cols = table.from_json(state, _SCHEMA, f"line {rule.name!r} state")
        return counter
