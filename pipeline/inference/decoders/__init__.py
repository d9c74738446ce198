"""Output decoders, one per model family, chosen by the registry's ``decoder.name``."""

from __future__ import annotations

from typing import Sequence

from pipeline.exceptions import ModelIntegrityError
from pipeline.inference.decoders.base import DecodeSettings, OutputDecoder, nms_group_ids
from pipeline.inference.decoders.yolox import YoloxDecoder
from pipeline.inference.registry import ModelSpec

__all__ = ["DecodeSettings", "OutputDecoder", "YoloxDecoder", "build_decoder"]


def build_decoder(
    spec: ModelSpec, class_names: Sequence[str], settings: DecodeSettings
) -> OutputDecoder:
    """The decoder a registry entry names, checked against its output shape."""
    groups = spec.nms_groups if settings.nms_groups is None else settings.nms_groups
    group_ids = nms_group_ids(class_names, groups)
    input_hw = (spec.input.height, spec.input.width)
    decoder = YoloxDecoder(
        input_hw, len(class_names), spec.output.decoder.strides, group_ids, settings
    )
    if tuple(spec.output.shape[1:]) != decoder.row_shape:
        raise ModelIntegrityError(
            f"model {spec.key}: output shape {list(spec.output.shape)} does not fit "
            f"{spec.output.decoder.name} with {len(class_names)} classes and strides "
            f"{list(spec.output.decoder.strides)} (rows {list(decoder.row_shape)})"
        )
    return decoder
