"""A candidate's detections against the primary's: pure maths, no Kafka, no ClickHouse.

Boxes are matched per class, greedily by candidate score, to the unmatched primary box of
highest IoU when that IoU is at least ``iou_threshold``; the primary is the reference, so
precision = matched / candidate boxes and recall = matched / primary boxes. With no boxes
on either side both are 1 (nothing to disagree about).

``WindowComparison`` accumulates joined frames of one camera and one event-time window
``[start_ms, end_ms)`` and turns them into a ``ModelComparison`` record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pipeline.boxes import iou_matrix

IOU_THRESHOLD = 0.5


def window_bounds(ts_ms: int, size_ms: int) -> tuple[int, int]:
    """The half-open window ``[start, end)`` of ``size_ms`` holding ``ts_ms``."""
    start = ts_ms - ts_ms % size_ms
    return start, start + size_ms


def match_count(primary: np.ndarray, candidate: np.ndarray, candidate_scores: Sequence[float],
                iou_threshold: float = IOU_THRESHOLD) -> int:
    """How many candidate boxes match a distinct primary box at IoU >= ``iou_threshold``."""
    ious = iou_matrix(candidate, primary)  # a copy: never written into a caller's array
    taken = np.zeros(len(primary), bool)
    matched = 0
    for i in np.argsort(-np.asarray(candidate_scores, float), kind="stable"):
        if len(primary) == 0:
            break
        row = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(row))
        if row[j] >= iou_threshold:
            taken[j] = True
            matched += 1
    return matched


@dataclass
class ClassTally:
    matched: int = 0
    candidate_boxes: int = 0
    primary_boxes: int = 0

    def record(self, class_name: str) -> dict[str, Any]:
        precision = self.matched / self.candidate_boxes if self.candidate_boxes else 1.0
        recall = self.matched / self.primary_boxes if self.primary_boxes else 1.0
        return {"class_name": class_name, "matched": self.matched, "candidate_boxes": self.candidate_boxes,
                "primary_boxes": self.primary_boxes, "precision": precision, "recall": recall}


def _by_class(boxes: Sequence[dict[str, Any]]) -> dict[int, tuple[np.ndarray, list[float]]]:
    out: dict[int, tuple[list, list]] = {}
    for b in boxes:
        xyxy, scores = out.setdefault(b["class_id"], ([], []))
        xyxy.append((b["x1"], b["y1"], b["x2"], b["y2"]))
        scores.append(b["score"])
    return {c: (np.asarray(x, float).reshape(-1, 4), s) for c, (x, s) in out.items()}


def compare_frame(primary: Sequence[dict[str, Any]], candidate: Sequence[dict[str, Any]],
                  iou_threshold: float = IOU_THRESHOLD) -> dict[int, ClassTally]:
    """Per class id: matched, candidate and primary box counts of one frame."""
    p, c = _by_class(primary), _by_class(candidate)
    out: dict[int, ClassTally] = {}
    for class_id in sorted(set(p) | set(c)):
        p_xyxy = p.get(class_id, (np.zeros((0, 4)), []))[0]
        c_xyxy, c_scores = c.get(class_id, (np.zeros((0, 4)), []))
        out[class_id] = ClassTally(match_count(p_xyxy, c_xyxy, c_scores, iou_threshold),
                                   len(c_xyxy), len(p_xyxy))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation); 0 for no values."""
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else 0.0


@dataclass
class WindowComparison:
    """Joined frames of one camera, one window, one (primary, candidate) pair of versions."""

    camera_id: str
    start_ms: int
    end_ms: int
    primary: tuple[str, str]
    candidate: tuple[str, str]
    frames: int = 0
    classes: dict[int, ClassTally] = field(default_factory=dict)
    count_diff: int = 0
    primary_latency_ms: list[float] = field(default_factory=list)
    candidate_latency_ms: list[float] = field(default_factory=list)

    def add(self, primary: dict[str, Any], candidate: dict[str, Any], count_diff: int = 0,
            iou_threshold: float = IOU_THRESHOLD) -> None:
        """One frame seen by both models; ``count_diff`` = candidate − primary count events."""
        self.frames += 1
        for class_id, tally in compare_frame(primary["boxes"], candidate["boxes"], iou_threshold).items():
            total = self.classes.setdefault(class_id, ClassTally())
            total.matched += tally.matched
            total.candidate_boxes += tally.candidate_boxes
            total.primary_boxes += tally.primary_boxes
        self.count_diff += count_diff
        self.primary_latency_ms.append(primary["inference_ms"])
        self.candidate_latency_ms.append(candidate["inference_ms"])

    def record(self, class_names: Sequence[str]) -> dict[str, Any]:
        """The ``ModelComparison`` record (schemas/model_comparison.avsc)."""
        def name(class_id: int) -> str:
            return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

        return {
            "camera_id": self.camera_id, "window_start_ms": self.start_ms, "window_end_ms": self.end_ms,
            "primary_model": self.primary[0], "primary_version": self.primary[1],
            "candidate_model": self.candidate[0], "candidate_version": self.candidate[1],
            "frames_compared": self.frames,
            "classes": [t.record(name(c)) for c, t in sorted(self.classes.items())],
            "count_diff": self.count_diff,
            "primary_latency_p50_ms": percentile(self.primary_latency_ms, 50),
            "primary_latency_p95_ms": percentile(self.primary_latency_ms, 95),
            "candidate_latency_p50_ms": percentile(self.candidate_latency_ms, 50),
            "candidate_latency_p95_ms": percentile(self.candidate_latency_ms, 95),
        }


def comparison_row(r: dict[str, Any]) -> tuple:
    """A ``ModelComparison`` record as a ``model_comparison`` row (columns ``COMPARISON_COLUMNS``)."""
    classes = r["classes"]
    return (r["camera_id"], r["window_start_ms"] // 1000, r["window_end_ms"] // 1000,
            r["primary_model"], r["primary_version"], r["candidate_model"], r["candidate_version"],
            r["frames_compared"], [c["class_name"] for c in classes], [c["matched"] for c in classes],
            [c["candidate_boxes"] for c in classes], [c["primary_boxes"] for c in classes],
            [c["precision"] for c in classes], [c["recall"] for c in classes], r["count_diff"],
            r["primary_latency_p50_ms"], r["primary_latency_p95_ms"],
            r["candidate_latency_p50_ms"], r["candidate_latency_p95_ms"])


COMPARISON_COLUMNS = (
    "camera_id", "window_start", "window_end", "primary_model", "primary_version", "candidate_model",
    "candidate_version", "frames_compared", "class_name", "matched", "candidate_boxes", "primary_boxes",
    "precision", "recall", "count_diff", "primary_latency_p50_ms", "primary_latency_p95_ms",
    "candidate_latency_p50_ms", "candidate_latency_p95_ms",
)
