"""ByteTrack-style multi-object tracker with capture-time clocks and plain-array state.

Per update: predict every track to the frame's capture time, then associate in
three stages (confirmed tracks with high-score boxes; still-unmatched active tracks
with low-score boxes; unconfirmed tracks with the remaining high-score boxes)
after dropping tracks unseen for longer than ``lost_track_buffer_ms``, and start
unconfirmed tracks from confident leftovers. The state is one columnar table
(see ``table.py``), so ``to_state``/``from_state`` restore it exactly and the same
inputs always give the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.counting import kalman, table
from pipeline.counting.exceptions import CountingStateError
from pipeline.boxes import iou_matrix
from pipeline.counting.matching import linear_assignment
from pipeline.counting.params import TrackerParams
from pipeline.detections import Detections

#: 2: covariances as their 2x2 blocks (``kalman``); 1 (8x8 covariances) is still read.
STATE_VERSION = 2
TENTATIVE, TRACKED, LOST = 0, 1, 2

_SCHEMA: table.Schema = {
    "track_id": (np.int64, ()),  # -1 until confirmed, so ids stay dense and monotonic
    "status": (np.int8, ()),
    "mean": (np.float64, (kalman.STATE_DIM,)),
    "cov": (np.float64, (3, kalman.MEASURE_DIM)),
    "hits": (np.int64, ()),
    "last_seen_ts_ms": (np.int64, ()),
    "class_id": (np.int64, ()),  # weighted Boyer-Moore majority candidate
    "class_weight": (np.float64, ()),
}
_V1_SCHEMA: table.Schema = {**_SCHEMA, "cov": (np.float64, (kalman.STATE_DIM, kalman.STATE_DIM))}


@dataclass(frozen=True)
class Tracks:
    """Confirmed tracks observed in one frame, sorted by id.

    ``xyxy`` is the matched detection's box (normalised), ``class_ids`` the track's
    majority class so a flickering label does not flip counts, ``scores`` the
    detection score.
    """

    track_ids: np.ndarray
    xyxy: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> Tracks:
        return cls(
            np.zeros(0, np.int64),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int32),
            np.zeros(0, np.float32),
        )


@dataclass(frozen=True)
class TrackerUpdate:
    """What one update produced: the tracks seen now, and ids dropped for good."""

    tracks: Tracks
    removed_ids: np.ndarray


class ByteTracker:
    """Tracks of one camera. Not thread-safe; one instance per camera."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self._group_of = {c: min(group) for group in self.params.class_groups for c in group}
        self._rows = table.empty(_SCHEMA)
        self._next_id = 1
        self._last_ts_ms: int | None = None

    @property
    def last_ts_ms(self) -> int | None:
        return self._last_ts_ms

    def update(self, capture_ts_ms: int, detections: Detections) -> TrackerUpdate:
        """Advance to ``capture_ts_ms`` and associate this frame's detections."""
        _check_inputs(capture_ts_ms, detections)
        capture_ts_ms = int(capture_ts_ms)
        removed = [self._rewind_if_clock_reset(capture_ts_ms)]
        now_ms = capture_ts_ms if self._last_ts_ms is None else max(capture_ts_ms, self._last_ts_ms)
        dt_s = 0.0 if self._last_ts_ms is None else (now_ms - self._last_ts_ms) / 1000.0
        # Expire before associating: a track unseen for longer than the buffer must
        # not be revived, even when no frames arrived in between to age it out.
        removed.append(
            self._drop((now_ms - self._rows["last_seen_ts_ms"]) > self.params.lost_track_buffer_ms)
        )
        self._predict(dt_s)
        det_of_row = self._associate_all(detections)
        matched = det_of_row >= 0
        self._apply_matches(matched, det_of_row, detections, now_ms)
        status = self._rows["status"]
        reported = matched & (status == TRACKED)
        seen = (self._rows["track_id"][reported], det_of_row[reported], self._rows["class_id"][reported])
        status[~matched & (status == TRACKED)] = LOST
        self._drop(~matched & (status == TENTATIVE))  # unconfirmed tracks get no second chance
        fresh = self._start_tracks(detections, det_of_row, now_ms)
        self._last_ts_ms = now_ms
        ids, dets, classes = (np.concatenate([a, b]) for a, b in zip(seen, fresh, strict=True))
        order = np.argsort(ids, kind="stable")
        tracks = Tracks(
            track_ids=ids[order],
            xyxy=detections.xyxy[dets[order]].astype(np.float32),
            class_ids=classes[order].astype(np.int32),
            scores=detections.scores[dets[order]].astype(np.float32),
        )
        return TrackerUpdate(tracks, np.sort(np.concatenate(removed)))

    def to_state(self) -> dict[str, Any]:
        """The whole tracker as JSON-able plain values (for the changelog table)."""
        return {
            "version": STATE_VERSION,
            "next_id": self._next_id,
            "last_ts_ms": self._last_ts_ms,
            "tracks": table.to_json(self._rows),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], params: TrackerParams | None = None) -> ByteTracker:
        """Restore a tracker saved by ``to_state``; params come from config, not state."""
        if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
            raise CountingStateError(f"tracker state: expected version 1 or {STATE_VERSION}")
        tracker = cls(params)
        next_id, last_ts_ms = state.get("next_id"), state.get("last_ts_ms")
        if not _is_int(next_id) or next_id < 1 or not (last_ts_ms is None or _is_int(last_ts_ms)):
            raise CountingStateError("tracker state: next_id/last_ts_ms must be integers")
        if state["version"] == 1:
            rows = table.from_json(state.get("tracks"), _V1_SCHEMA, "tracker state.tracks")
            rows["cov"] = kalman.cov_blocks(rows["cov"])
        else:
            rows = table.from_json(state.get("tracks"), _SCHEMA, "tracker state.tracks")
        if not np.isin(rows["status"], [TENTATIVE, TRACKED, LOST]).all():
            raise CountingStateError("tracker state.tracks.status: unknown status code")
        if (rows["track_id"] >= next_id).any():
            raise CountingStateError("tracker state: a track id is not below next_id")
        tracker._rows, tracker._next_id, tracker._last_ts_ms = rows, next_id, last_ts_ms
        return tracker

    def _rewind_if_clock_reset(self, capture_ts_ms: int) -> np.ndarray:
        """Drop every track when capture time jumps back by more than the buffer.

        Such a jump is a different timeline (a replayed file, a reset camera clock):
        old tracks cannot continue into it. Smaller backward steps are treated as
        no time passing.
        """
        last = self._last_ts_ms
        if last is None or capture_ts_ms >= last - self.params.lost_track_buffer_ms:
            return np.zeros(0, np.int64)
        ids = self._rows["track_id"]
        removed = np.sort(ids[ids >= 0])
        self._rows = table.empty(_SCHEMA)
        self._last_ts_ms = None
        return removed

    def _predict(self, dt_s: float) -> None:
        rows = self._rows
        mean = rows["mean"].copy()
        # Like ByteTrack: an unseen box should not keep growing or shrinking.
        mean[rows["status"] == LOST, 6:8] = 0.0
        rows["mean"], rows["cov"] = kalman.predict(mean, rows["cov"], dt_s, self.params.motion_noise)

    def _associate_all(self, detections: Detections) -> np.ndarray:
        """Index of the detection matched to each track row, or -1."""
        p = self.params
        status = self._rows["status"]
        det_of_row = np.full(len(status), -1, np.int64)
        det_taken = np.zeros(len(detections), bool)
        high = detections.scores >= p.high_score_threshold
        low = (detections.scores >= p.low_score_threshold) & ~high

        def stage(track_mask: np.ndarray, det_mask: np.ndarray, min_iou: float) -> None:
            pairs = self._match(np.flatnonzero(track_mask), np.flatnonzero(det_mask), detections, min_iou)
            det_of_row[pairs[:, 0]], det_taken[pairs[:, 1]] = pairs[:, 1], True

        # 1: confirmed tracks, seen or lost, take the confident boxes.
        stage(status != TENTATIVE, high, p.match_iou_threshold)
        # 2: tracks seen last frame but still unmatched take unsure boxes (occlusion).
        stage((status == TRACKED) & (det_of_row < 0), low, p.low_score_match_iou_threshold)
        # 3: unconfirmed tracks take confident boxes nobody else wanted.
        stage(status == TENTATIVE, high & ~det_taken, p.match_iou_threshold)
        return det_of_row

    def _match(
        self, rows: np.ndarray, dets: np.ndarray, detections: Detections, min_iou: float
    ) -> np.ndarray:
        """``(K, 2)`` matched (row, detection) index pairs between the given subsets."""
        if len(rows) == 0 or len(dets) == 0:
            return np.zeros((0, 2), np.int64)
        predicted = kalman.cxcywh_to_xyxy(self._rows["mean"][rows, :4])
        cost = 1.0 - iou_matrix(predicted, detections.xyxy[dets])
        if self.params.class_aware:
            track_groups = self._groups(self._rows["class_id"][rows])
            det_groups = self._groups(detections.class_ids[dets])
            cost[track_groups[:, None] != det_groups[None, :]] = np.inf
        pairs = linear_assignment(cost, max_cost=1.0 - min_iou).matches
        return np.stack([rows[pairs[:, 0]], dets[pairs[:, 1]]], axis=1)

    def _groups(self, class_ids: np.ndarray) -> np.ndarray:
        """Class id -> id of its association group (the group's smallest class id)."""
        group_of = self._group_of
        return np.array([group_of.get(c, c) for c in np.asarray(class_ids, np.int64).tolist()], np.int64)

    def _apply_matches(
        self, matched: np.ndarray, det_of_row: np.ndarray, detections: Detections, now_ms: int
    ) -> None:
        rows, p = self._rows, self.params
        dets = det_of_row[matched]
        measured = kalman.xyxy_to_cxcywh(detections.xyxy[dets])
        rows["mean"][matched], rows["cov"][matched] = kalman.update(
            rows["mean"][matched], rows["cov"][matched], measured, p.motion_noise
        )
        rows["hits"][matched] += 1
        rows["last_seen_ts_ms"][matched] = now_ms
        rows["class_id"][matched], rows["class_weight"][matched] = _vote(
            rows["class_id"][matched],
            rows["class_weight"][matched],
            detections.class_ids[dets],
            detections.scores[dets],
        )
        confirm = matched & (rows["status"] == TENTATIVE) & (rows["hits"] >= p.min_hits_to_confirm)
        rows["track_id"][confirm] = self._allocate_ids(int(confirm.sum()))
        rows["status"][matched & (rows["track_id"] >= 0)] = TRACKED

    def _drop(self, mask: np.ndarray) -> np.ndarray:
        """Remove the masked rows; returns the ids of the confirmed tracks among them."""
        removed = self._rows["track_id"][mask & (self._rows["track_id"] >= 0)]
        self._rows = table.take(self._rows, ~mask)
        return np.sort(removed)

    def _start_tracks(
        self, detections: Detections, det_of_row: np.ndarray, now_ms: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open tracks for confident unmatched detections; returns (ids, dets, classes) confirmed at once."""
        used = np.zeros(len(detections), bool)
        used[det_of_row[det_of_row >= 0]] = True
        fresh = np.flatnonzero(~used & (detections.scores >= self.params.new_track_score_threshold))
        mean, cov = kalman.initiate(kalman.xyxy_to_cxcywh(detections.xyxy[fresh]), self.params.motion_noise)
        confirmed = self.params.min_hits_to_confirm <= 1
        ids = self._allocate_ids(len(fresh)) if confirmed else np.full(len(fresh), -1, np.int64)
        new_rows = {
            "track_id": ids,
            "status": np.full(len(fresh), TRACKED if confirmed else TENTATIVE, np.int8),
            "mean": mean,
            "cov": cov,
            "hits": np.ones(len(fresh), np.int64),
            "last_seen_ts_ms": np.full(len(fresh), now_ms, np.int64),
            "class_id": detections.class_ids[fresh].astype(np.int64),
            "class_weight": detections.scores[fresh].astype(np.float64),
        }
        self._rows = table.concat(self._rows, new_rows)
        if not confirmed:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return ids, fresh.astype(np.int64), new_rows["class_id"]

    def _allocate_ids(self, count: int) -> np.ndarray:
        ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        return ids


def _vote(
    candidate: np.ndarray, weight: np.ndarray, class_ids: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Score-weighted Boyer-Moore majority vote: two scalars per track, no history.

    The candidate is the class holding the majority of the score mass whenever one
    exists, so a detector that labels a car "truck" one frame in five keeps "car".
    """
    class_ids = class_ids.astype(np.int64)
    scores = scores.astype(np.float64)
    same = candidate == class_ids
    signed = np.where(same, weight + scores, weight - scores)
    takeover = signed < 0.0
    return np.where(takeover, class_ids, candidate), np.abs(signed)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_inputs(capture_ts_ms: int, detections: Detections) -> None:
    """Refuse broken contracts loudly rather than track garbage."""
    if not _is_int(capture_ts_ms) and not isinstance(capture_ts_ms, np.integer):
        raise TypeError(f"capture_ts_ms must be an integer of epoch ms, got {capture_ts_ms!r}")
    if not isinstance(detections, Detections):
        raise TypeError(f"detections must be a Detections, got {type(detections).__name__}")
    if not (np.isfinite(detections.xyxy).all() and np.isfinite(detections.scores).all()):
        raise ValueError("detections contain NaN or infinite values")
