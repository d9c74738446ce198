"""Tracker settings: every threshold spelled out, with what moving it trades off."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.counting.kalman import MotionNoise
from pipeline.exceptions import ConfigError

# COCO ids of car, motorcycle, bus and truck: detectors flip between them on one
# vehicle from frame to frame, so by default they associate as one class.
COCO_VEHICLE_CLASSES = frozenset({2, 3, 5, 7})


@dataclass(frozen=True)
class TrackerParams:
    """ByteTrack settings in capture-time units, sensible for cameras at 5-25 fps.

    high_score_threshold: detections at or above it are associated first and may
        start tracks. Raising it keeps doubtful boxes from stealing tracks but leans
        more on the second stage; lowering it lets clutter compete in the first stage.
    low_score_threshold: detections below it are ignored. Between the two
        thresholds a detection can only continue an existing track (ByteTrack's
        point: occluded objects score low). Lowering it keeps tracks through
        heavier occlusion at the risk of following background clutter.
    new_track_score_threshold: an unmatched detection needs this score to start a
        track. Raising it cuts phantom tracks (and phantom counts); lowering it
        picks up small or distant objects sooner.
    match_iou_threshold: least IoU between a track's predicted box and a
        high-score detection for them to match (also used to confirm new tracks).
        Lowering it follows fast objects at low frame rates; raising it avoids
        swapping identities between neighbours.
    low_score_match_iou_threshold: least IoU for the low-score second stage; kept
        stricter because those boxes are less trustworthy.
    lost_track_buffer_ms: how long an unseen track is kept for re-association, in
        capture time (frames drop, rates differ). Raising it bridges longer
        occlusions without a new id (no double count); lowering it reduces wrong
        re-association to a different object that appears where a lost one was.
    min_hits_to_confirm: consecutive matched frames before a track gets an id and
        is reported. Raising it removes flicker tracks from false detections;
        lowering it reports objects sooner (1 reports on first sight).
    class_aware: when True a track only matches detections of its class group,
        so a person walking past a car never takes over the car's track.
    class_groups: sets of class ids that associate as one class when class_aware
        (defaults to COCO's vehicle classes, which detectors confuse).
    motion_noise: Kalman filter noise levels, see ``MotionNoise``.
    """

    high_score_threshold: float = 0.5
    low_score_threshold: float = 0.1
    new_track_score_threshold: float = 0.6
    match_iou_threshold: float = 0.2
    low_score_match_iou_threshold: float = 0.5
    lost_track_buffer_ms: int = 1500
    min_hits_to_confirm: int = 2
    class_aware: bool = True
    class_groups: tuple[frozenset[int], ...] = (COCO_VEHICLE_CLASSES,)
    motion_noise: MotionNoise = MotionNoise()

    def __post_init__(self) -> None:
        for name in (
            "high_score_threshold",
            "low_score_threshold",
            "new_track_score_threshold",
            "match_iou_threshold",
            "low_score_match_iou_threshold",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"tracker.{name}: {value!r} must be a number in 0..1")
        if not self.low_score_threshold <= self.high_score_threshold <= self.new_track_score_threshold:
            raise ConfigError(
                "tracker: need low_score_threshold <= high_score_threshold <= new_track_score_threshold"
            )
        if self.match_iou_threshold <= 0.0 or self.low_score_match_iou_threshold <= 0.0:
            raise ConfigError("tracker: IoU thresholds must be > 0 (IoU 0 means no overlap)")
        _check_int("lost_track_buffer_ms", self.lost_track_buffer_ms, minimum=0)
        _check_int("min_hits_to_confirm", self.min_hits_to_confirm, minimum=1)
        if not isinstance(self.class_aware, bool):
            raise ConfigError(f"tracker.class_aware: {self.class_aware!r} must be true or false")
        groups = tuple(frozenset(g) for g in self.class_groups)
        seen: set[int] = set()
        for group in groups:
            if seen & group:
                raise ConfigError(f"tracker.class_groups: class ids {sorted(seen & group)} are in two groups")
            seen |= group
        object.__setattr__(self, "class_groups", groups)


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"tracker.{name}: {value!r} must be an integer >= {minimum}")
