"""Counting: a ByteTrack-style tracker plus line and zone rules, as pure logic.

No I/O and no faust here; the stream adapter feeds ``CameraCounter.apply`` one
frame of detections at a time and stores ``to_state()`` in a changelog table.
"""

from pipeline.counting.counter import CameraCounter, CountEvent, CountResult, ZoneOccupancy, event_id
from pipeline.counting.exceptions import CountingStateError
from pipeline.counting.geometry import Anchor
from pipeline.counting.lines import LineCounter, LineCrossing, crossing_direction
from pipeline.counting.params import COCO_VEHICLE_CLASSES, TrackerParams
from pipeline.counting.rules import LineRule, Rule, ZoneRule
from pipeline.counting.tracker import ByteTracker, TrackerUpdate, Tracks
from pipeline.counting.zones import Occupancy, ZoneCounter, ZoneTransition

__all__ = [
    "Anchor",
    "ByteTracker",
    "COCO_VEHICLE_CLASSES",
    "CameraCounter",
    "CountEvent",
    "CountResult",
    "CountingStateError",
    "LineCounter",
    "LineCrossing",
    "LineRule",
    "Occupancy",
    "Rule",
    "TrackerParams",
    "TrackerUpdate",
    "Tracks",
    "ZoneCounter",
    "ZoneOccupancy",
    "ZoneRule",
    "ZoneTransition",
    "crossing_direction",
    "event_id",
]
