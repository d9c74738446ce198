"""Counting rules as validated, frozen dataclasses in normalised coordinates.

Rules come from the config file; validating here means a bad rule is refused at
load time with its name and field, not discovered as a silent zero count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from pipeline.counting.geometry import Anchor, polygon_area
from pipeline.exceptions import ConfigError

Point = tuple[float, float]
# Rule names go into event ids and warehouse rows, so keep them to a plain token.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ConfigError(
            f"{kind}.name: {name!r} must be 1-128 characters of letters, digits, '_', '.', ':', '-'"
        )


def _point(where: str, value: Any) -> Point:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected a point [x, y], got {value!r}") from exc
    if not (math.isfinite(x) and math.isfinite(y) and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ConfigError(f"{where}: {value!r} must be normalised coordinates in 0..1")
    return (x, y)


def _classes(where: str, value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{where}: expected a set of class ids or null, got {value!r}")
    ids = frozenset(value)
    if not ids or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in ids):
        raise ConfigError(f"{where}: {value!r} must be a non-empty set of class ids >= 0 (or null for all)")
    return ids


def _anchor(where: str, value: Any) -> Anchor:
    try:
        return Anchor(value)
    except ValueError as exc:
        choices = ", ".join(a.value for a in Anchor)
        raise ConfigError(f"{where}: {value!r} is not one of {choices}") from exc


def _min_frames(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {value!r} must be an integer >= 1")
    return value


@dataclass(frozen=True)
class LineRule:
    """Count tracks whose anchor crosses the directed segment ``start -> end``.

    ``in`` is a crossing from the segment's left to its right as seen on screen by
    someone looking from ``start`` to ``end`` (y down): a segment pointing right
    counts top-to-bottom as ``in``; one pointing up counts left-to-right as ``in``.
    ``classes`` limits counting to those class ids (None: all). ``min_frames`` is
    how many observations a track needs on one side before leaving it counts:
    raising it ignores tracks born on the line and detector jitter, lowering it
    counts objects that appear close to the line. ``hysteresis`` is a band either
    side of the line (normalised units) inside which the side is left unchanged:
    raising it ignores jitter, lowering it counts objects that stop just past the line.
    """

    name: str
    start: Point
    end: Point
    classes: frozenset[int] | None = None
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_frames: int = 2
    hysteresis: float = 0.005

    def __post_init__(self) -> None:
        _check_name("line", self.name)
        where = f"line {self.name!r}"
        start = _point(f"{where}.start", self.start)
        end = _point(f"{where}.end", self.end)
        if math.hypot(end[0] - start[0], end[1] - start[1]) < 1e-6:
            raise ConfigError(f"{where}.end: must differ from start")
        hyst = self.hysteresis
        if isinstance(hyst, bool) or not isinstance(hyst, (int, float)) or not 0.0 <= hyst < 0.5:
            raise ConfigError(f"{where}.hysteresis: {hyst!r} must be a number in [0, 0.5)")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "classes", _classes(f"{where}.classes", self.classes))
        object.__setattr__(self, "anchor", _anchor(f"{where}.anchor", self.anchor))
        object.__setattr__(self, "min_frames", _min_frames(f"{where}.min_frames", self.min_frames))
        object.__setattr__(self, "hysteresis", float(hyst))


@dataclass(frozen=True)
class ZoneRule:
    """Occupancy of a polygon and enter/exit events of tracks whose anchor is inside.

    ``polygon`` is at least three ``(x, y)`` vertices. A track's inside/outside state
    flips only after ``min_frames`` consecutive observations on the other side:
    raising it suppresses enter/exit flicker at the edge, lowering it reports
    entries sooner and catches brief visits.
    """

    name: str
    polygon: tuple[Point, ...]
    classes: frozenset[int] | None = None
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_frames: int = 2

    def __post_init__(self) -> None:
        _check_name("zone", self.name)
        where = f"zone {self.name!r}"
        if isinstance(self.polygon, (str, bytes)) or not isinstance(self.polygon, Iterable):
            raise ConfigError(f"{where}.polygon: expected a list of [x, y] points")
        polygon = tuple(_point(f"{where}.polygon[{i}]", p) for i, p in enumerate(self.polygon))
        if len(polygon) < 3 or polygon_area(np.array(polygon)) < 1e-9:
            raise ConfigError(f"{where}.polygon: needs at least 3 points enclosing a non-zero area")
        object.__setattr__(self, "polygon", polygon)
        object.__setattr__(self, "classes", _classes(f"{where}.classes", self.classes))
        object.__setattr__(self, "anchor", _anchor(f"{where}.anchor", self.anchor))
        object.__setattr__(self, "min_frames", _min_frames(f"{where}.min_frames", self.min_frames))


Rule = LineRule | ZoneRule


def rule_fingerprint(rule: Rule) -> dict[str, Any]:
    """JSON-able description of a rule, stored with its state.

    On restore a rule whose definition changed starts fresh instead of applying
    per-track sides computed against the old geometry.
    """
    out: dict[str, Any] = {"kind": type(rule).__name__}
    for f in fields(rule):
        value = getattr(rule, f.name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, Anchor):
            value = value.value
        elif isinstance(value, tuple):
            value = [list(p) if isinstance(p, tuple) else p for p in value]
        out[f.name] = value
    return out


def class_allowed(class_ids: np.ndarray, classes: frozenset[int] | None) -> np.ndarray:
    """Boolean mask of the class ids a rule counts."""
    class_ids = np.asarray(class_ids)
    if classes is None:
        return np.ones(class_ids.shape, bool)
    return np.isin(class_ids, sorted(classes))
