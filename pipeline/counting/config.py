"""The ``counting`` config section: tracker thresholds shared by every camera."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from pipeline.config import Section
from pipeline.counting.params import TrackerParams


class CountingConfig(Section):
    #: Overrides of ``TrackerParams`` fields (see its docstring for what each trades off).
    tracker: dict[str, Any] = Field(default_factory=dict)
    #: Most boxes one Detections message may carry; more is an ``InputLimitError`` (to the
    #: DLQ). Bounds the tracker's per-frame matching work (tracks x boxes): raise it for
    #: scenes that really hold more objects, lower it to shed a flood of junk sooner.
    max_boxes: int = Field(1000, ge=1)

    @field_validator("tracker")
    @classmethod
    def _known_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = set(TrackerParams.__dataclass_fields__) - {"class_groups", "motion_noise"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown tracker parameter(s) {unknown}; known: {sorted(known)}")
        TrackerParams(**value)  # validates values; raises ConfigError naming the field
        return value

    def tracker_params(self) -> TrackerParams:
        return TrackerParams(**self.tracker)
