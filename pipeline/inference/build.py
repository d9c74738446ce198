"""An inference worker made from the settings: its registry model loaded, verified and
warmed up, and its role wired (``camcount infer``, the serving tests and the benchmarks)."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.inference.base import Detector, LatencyRecorder
from pipeline.inference.worker import InferenceWorker
from pipeline.kafka import topics
from pipeline.shadow.assignment import parse_model_key


def load_worker_detector(settings: Settings, model: str | None = None,
                         recorder: LatencyRecorder | None = None) -> Detector:
    """The registry model ``model`` (default ``models.primary``), verified, warmed up."""
    from pipeline.inference.detector import load_detector
    from pipeline.inference.registry import registry_from_settings

    name, version = parse_model_key(model or settings.models.primary)
    cfg = settings.inference
    detector = load_detector(registry_from_settings(settings), name, version, cfg.worker_session, cfg.decode, recorder)
    detector.warmup(cfg.max_batch)
    return detector


def build_worker(settings: Settings, model: str | None = None, recorder: LatencyRecorder | None = None,
                 role: str = "primary", follow: bool = False, **options) -> InferenceWorker:
    """A worker serving ``model``. ``follow`` (primary role): follow model-control live
    (promotions, rollbacks, the canary) and mirror its frame sample to ``frames.shadow``.
    Role ``shadow``: ``frames.shadow`` -> ``detections.shadow`` in a consumer group of its
    own per candidate version."""
    detector = load_worker_detector(settings, model, recorder)
    if role == "shadow":
        own = f"{settings.inference.group_id}-shadow-{detector.name}-{detector.version}"
        options["group_id"] = options.get("group_id") or topics.name(settings, own)  # prefixed like the topics
        options.update(input_topic=topics.FRAMES_SHADOW, output_topic=topics.DETECTIONS_SHADOW)
    elif follow:
        from pipeline.shadow.live import LiveModels

        options["live"] = LiveModels(settings, lambda key: load_worker_detector(settings, key, recorder))
    return InferenceWorker(settings, detector, **options)
