"""The counter's per-message step, free of Kafka and faust: Detections in, records out.

The faust agent (``app.py``) and the offline ``camcount count`` both go through
``CountingProcessor``, so the distributed path and the one-process path count alike.
Each camera's ``CameraCounter`` is cached between frames; its state is written back to
the changelog table after every frame and re-read when the cache is stale (another
worker owned the camera in between, or this one restarted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pipeline.codec import COUNT_EVENT, DETECTIONS, HEARTBEAT, OCCUPANCY_SAMPLE, Codec
from pipeline.config import Settings
from pipeline.counting.camera_rules import rules_for_camera
from pipeline.counting.counter import CameraCounter, CountResult
from pipeline.counting.params import TrackerParams
from pipeline.detections import Detections
from pipeline.exceptions import InputLimitError

log = logging.getLogger(__name__)

#: class_name of occupancy samples that count every class in the zone.
ALL_CLASSES = "all"

ClassNames = Callable[[str, str], Sequence[str]]


@dataclass
class Output:
    """What one Detections message produced: the camera's new state and records to send."""

    state: dict[str, Any] | None
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    duplicate: bool = False


def check_box_limit(rec: dict[str, Any], max_boxes: int) -> None:
    """Raise ``InputLimitError`` (a ``DecodeError``: the message goes to the DLQ) for a
    Detections record with more than ``max_boxes`` boxes."""
    count = len(rec["boxes"])
    if count > max_boxes:
        raise InputLimitError(f"detections of camera {rec['camera_id']!r} seq {rec['seq']} carry {count} boxes, "
                              f"over counting.max_boxes={max_boxes}")


def detections_from_record(rec: dict[str, Any]) -> Detections:
    boxes = rec["boxes"]
    return Detections.from_arrays(
        [(b["x1"], b["y1"], b["x2"], b["y2"]) for b in boxes],
        [b["score"] for b in boxes],
        [b["class_id"] for b in boxes],
    )


class CountingProcessor:
    """Counts every camera of ``settings`` from their Detections records."""

    def __init__(self, settings: Settings, class_names: ClassNames, params: TrackerParams | None = None) -> None:
        self._settings = settings
        self._class_names = class_names
        self._params = params
        self._counters: dict[str, CameraCounter] = {}

    def _counter(self, camera_id: str, model: tuple[str, str], state: dict[str, Any] | None) -> CameraCounter | None:
        cached = self._counters.get(camera_id)
        if cached is not None and state is not None and (cached.stream_id, cached.last_seq) == _marker(state):
            return cached
        try:
            camera = self._settings.camera(camera_id)
        except Exception:  # noqa: BLE001 - unknown camera: nothing to count, heartbeats only
            return None
        rules = rules_for_camera(camera, self._class_names(*model))
        counter = (CameraCounter.from_state(state, rules, self._params) if state
                   else CameraCounter(rules, self._params))
        self._counters[camera_id] = counter
        return counter

    def process(self, rec: dict[str, Any], state: dict[str, Any] | None) -> Output:
        """Apply one decoded Detections record to its camera's state."""
        camera_id, model = rec["camera_id"], (rec["model_name"], rec["model_version"])
        heartbeat = (HEARTBEAT, dict(camera_id=camera_id, stream_id=rec["stream_id"], seq=rec["seq"],
                                     capture_ts_ms=rec["capture_ts_ms"], end_of_stream=rec["end_of_stream"]))
        counter = self._counter(camera_id, model, state)
        if counter is None:
            return Output(state, [heartbeat])
        if counter.is_duplicate(rec["seq"], rec["stream_id"]):
            return Output(state, [], duplicate=True)
        result = counter.apply(rec["seq"], rec["capture_ts_ms"], detections_from_record(rec),
                               stream_id=rec["stream_id"])
        names = self._class_names(*model)
        zone_classes = {r.name: r.classes or frozenset() for r in counter.rules}
        records = _event_records(camera_id, model, names, result, zone_classes) + [heartbeat]
        return Output(counter.to_state(), records)


def _marker(state: dict[str, Any]) -> tuple[Any, Any]:
    return state.get("stream_id"), state.get("last_seq")


def _event_records(camera_id: str, model: tuple[str, str], names: Sequence[str], result: CountResult,
                   zone_classes: dict[str, frozenset[int]]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for ev in result.events:
        out.append((COUNT_EVENT, dict(
            event_id=ev.event_id, camera_id=camera_id, stream_id=ev.stream_id, seq=ev.seq,
            capture_ts_ms=ev.capture_ts_ms, rule=ev.rule, rule_kind=ev.rule_kind, class_name=names[ev.class_id],
            direction=ev.direction, track_id=ev.track_id, dwell_ms=ev.dwell_ms,
            model_name=model[0], model_version=model[1])))
    for occ in result.occupancy:
        # Every frame gives a sample for the total and for each class the zone counts (zeros
        # included), so window means are over all frames, not just those with someone inside.
        per_class = {names[c]: 0 for c in zone_classes.get(occ.rule, ())}
        per_class |= {names[c]: n for c, n in occ.by_class.items()}
        for class_name, n in [(ALL_CLASSES, occ.total), *sorted(per_class.items())]:
            out.append((OCCUPANCY_SAMPLE, dict(
                camera_id=camera_id, stream_id=result.stream_id, seq=result.seq,
                capture_ts_ms=occ.capture_ts_ms, rule=occ.rule, class_name=class_name, occupancy=n)))
    return out


def decode_detections(codec: Codec, value: bytes) -> dict[str, Any]:
    return codec.decode_as(value, DETECTIONS)
