"""Build a camera's counting rules from its config: pixels to 0..1, class names to model ids."""

from __future__ import annotations

from typing import Sequence

from pipeline.config import CameraConfig, LineRuleConfig, Point
from pipeline.counting.rules import LineRule, Rule, ZoneRule
from pipeline.exceptions import ConfigError


def class_ids(names: Sequence[str] | None, class_names: Sequence[str], where: str) -> frozenset[int] | None:
    """Model class ids of ``names`` (None: every class); an unknown name is a config error."""
    if names is None:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ConfigError(f"{where}.classes: {missing} are not classes of the model (e.g. {list(class_names[:8])})")
    return frozenset(index[n] for n in names)


def _normalise(points: Sequence[Point], size: tuple[int, int] | None) -> list[Point]:
    if size is None:
        return [(float(x), float(y)) for x, y in points]
    width, height = size
    return [(min(x / width, 1.0), min(y / height, 1.0)) for x, y in points]


def rules_for_camera(camera: CameraConfig, class_names: Sequence[str]) -> list[Rule]:
    """The camera's rules in normalised coordinates with class ids of the given model."""
    rules: list[Rule] = []
    for i, cfg in enumerate(camera.rules):
        where = f"cameras[{camera.id}].rules[{i}]"
        classes = class_ids(cfg.classes, class_names, where)
        if isinstance(cfg, LineRuleConfig):
            start, end = _normalise(cfg.points, camera.resolution)
            rules.append(LineRule(cfg.name, start, end, classes, cfg.anchor, cfg.min_frames))
        else:
            polygon = tuple(_normalise(cfg.polygon, camera.resolution))
            rules.append(ZoneRule(cfg.name, polygon, classes, cfg.anchor, cfg.min_frames))
    return rules
