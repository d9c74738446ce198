"""Output decoder interface and the settings every decoder shares.

One decoder per model family turns a batch of raw output tensors into one
``Detections`` per frame; the registry entry names the family.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.detections import Detections
from pipeline.exceptions import ConfigError
from pipeline.inference.base import FrameMeta


class DecodeSettings(BaseModel):
    """Thresholds applied after the model run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_floor: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Boxes scoring below this are dropped before NMS. Low (0.1) so "
        "a ByteTrack-style tracker gets low-score boxes to keep tracks alive; "
        "raising it cuts output size and CPU but loses occluded objects.",
    )
    nms_iou: float = Field(
        0.45,
        gt=0.0,
        le=1.0,
        description="Boxes overlapping a better one by more than this IoU are "
        "suppressed. Lower merges neighbours in crowds; higher keeps duplicates.",
    )
    class_agnostic: bool = Field(
        False, description="Run NMS across all classes as one group."
    )
    nms_groups: Mapping[str, tuple[str, ...]] | None = Field(
        None,
        description="Class-name groups suppressed against each other (e.g. "
        "vehicles); None uses the registry entry's groups.",
    )
    max_detections: int = Field(300, gt=0, description="Boxes kept per frame.")
    pre_nms_top_k: int = Field(
        2000, gt=0, description="Best candidates considered by NMS (bounds its cost)."
    )


def nms_group_ids(
    class_names: Sequence[str], groups: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """Per-class NMS group id: grouped classes share one id, others get their own.

    Raises ``ConfigError`` for an unknown class name or a class in two groups.
    """
    index = {name: i for i, name in enumerate(class_names)}
    ids = np.arange(len(class_names), dtype=np.int64)
    owner: dict[str, str] = {}
    for group_no, (group, names) in enumerate(groups.items()):
        for name in names:
            if name not in index:
                raise ConfigError(f"nms_groups.{group}: unknown class {name!r}")
            if name in owner:
                raise ConfigError(
                    f"nms_groups.{group}: class {name!r} is already in {owner[name]!r}"
                )
            owner[name] = group
            ids[index[name]] = len(class_names) + group_no
    return ids


class OutputDecoder(Protocol):
    """Raw model outputs of a batch to one ``Detections`` per frame."""

    def decode_batch(
        self, outputs: Sequence[np.ndarray], metas: Sequence[FrameMeta]
    ) -> list[Detections]:
        """``outputs`` are the session's outputs, each with the batch as dim 0."""
        ...
