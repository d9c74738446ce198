"""One camera's counting: tracker + line and zone rules, replay-safe.

``CameraCounter.apply`` is the whole per-frame step the faust agent calls. It is
deterministic (same state + same frame -> same result, same event ids), ignores
frames it has already applied, and its state is one JSON-able dict, so a
restarted worker restored from the changelog continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.counting.exceptions import CountingStateError
from pipeline.counting.lines import LineCounter
from pipeline.counting.params import TrackerParams
from pipeline.counting.rules import LineRule, Rule, ZoneRule, rule_fingerprint
from pipeline.counting.tracker import ByteTracker, Tracks
from pipeline.counting.zones import ZoneCounter
from pipeline.detections import Detections
from pipeline.exceptions import ConfigError

STATE_VERSION = 1
# Earlier stream ids remembered, so a re-delivered frame of a finished stream
# session is recognised as old instead of being taken for a new session.
MAX_PAST_STREAMS = 16

EventDirection = Literal["in", "out", "enter", "exit"]


@dataclass(frozen=True)
class CountEvent:
    """One count: a line crossing (``in``/``out``) or a zone ``enter``/``exit``.

    ``event_id`` is built from the stream, track, rule and direction (plus the visit
    number for zones), so a replayed frame yields the same id and downstream can
    drop the duplicate. ``dwell_ms`` is set for zone exits only.
    """

    event_id: str
    rule: str
    rule_kind: Literal["line", "zone"]
    direction: EventDirection
    class_id: int
    track_id: int
    capture_ts_ms: int
    seq: int
    stream_id: str
    dwell_ms: int | None = None


@dataclass(frozen=True)
class ZoneOccupancy:
    """Tracks inside a zone after a frame; a class missing from ``by_class`` has 0."""

    rule: str
    capture_ts_ms: int
    total: int
    by_class: dict[int, int]


@dataclass(frozen=True)
class CountResult:
    """Outcome of one ``apply``. ``duplicate`` frames change nothing and emit nothing."""

    seq: int
    capture_ts_ms: int
    stream_id: str
    duplicate: bool
    tracks: Tracks
    events: tuple[CountEvent, ...]
    occupancy: tuple[ZoneOccupancy, ...]


def event_id(stream_id: str, track_id: int, rule: str, direction: str, visit: int | None = None) -> str:
    """Deterministic id of a count event; zone events add the visit number."""
    base = f"{stream_id}/{track_id}/{rule}/{direction}"
    return base if visit is None else f"{base}/{visit}"


class CameraCounter:
    """Tracker and rules of one camera; one instance per camera, not thread-safe."""

    def __init__(self, rules: Sequence[Rule] = (), params: TrackerParams | None = None) -> None:
        names = [rule.name for rule in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"rules: names must be unique per camera, repeated: {duplicates}")
        for rule in rules:
            if not isinstance(rule, (LineRule, ZoneRule)):
                raise ConfigError(f"rules: expected LineRule or ZoneRule, got {type(rule).__name__}")
        self.rules = tuple(rules)
        self.tracker = ByteTracker(params)
        self._lines = [LineCounter(r) for r in self.rules if isinstance(r, LineRule)]
        self._zones = [ZoneCounter(r) for r in self.rules if isinstance(r, ZoneRule)]
        self._stream_id: str | None = None
        self._last_seq: int | None = None
        self._past_streams: list[str] = []

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    def is_duplicate(self, seq: int, stream_id: str) -> bool:
        """True for a frame already applied: an old seq of the current stream or any
        frame of an earlier stream (at-least-once delivery re-sends both)."""
        if stream_id in self._past_streams:
            return True
        return stream_id == self._stream_id and self._last_seq is not None and seq <= self._last_seq

    def apply(self, seq: int, capture_ts_ms: int, detections: Detections, *, stream_id: str) -> CountResult:
        """Track one frame's detections and evaluate every rule on the result."""
        _check_frame(seq, capture_ts_ms, stream_id)
        seq, capture_ts_ms = int(seq), int(capture_ts_ms)
        if self.is_duplicate(seq, stream_id):
            return CountResult(seq, capture_ts_ms, stream_id, True, Tracks.empty(), (), ())
        update = self.tracker.update(capture_ts_ms, detections)
        if self._stream_id is not None and stream_id != self._stream_id:
            self._past_streams = (self._past_streams + [self._stream_id])[-MAX_PAST_STREAMS:]
        self._stream_id, self._last_seq = stream_id, seq
        frame = _Frame(stream_id, seq, capture_ts_ms)
        events: list[CountEvent] = []
        for line in self._lines:
            crossings = line.update(update.tracks)
            line.forget(update.removed_ids)
            events += [frame.event(line.rule.name, c.direction, c.track_id, c.class_id) for c in crossings]
        occupancy = []
        for zone in self._zones:
            transitions = zone.update(update.tracks, capture_ts_ms) + zone.forget(update.removed_ids)
            events += [
                frame.event(zone.rule.name, t.direction, t.track_id, t.class_id, t.visit, t.dwell_ms)
                for t in transitions
            ]
            occ = zone.occupancy()
            occupancy.append(ZoneOccupancy(zone.rule.name, capture_ts_ms, occ.total, occ.by_class))
        return CountResult(
            seq, capture_ts_ms, stream_id, False, update.tracks, tuple(events), tuple(occupancy)
        )

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as JSON-able plain values."""
        rules = {
            c.rule.name: {"rule": rule_fingerprint(c.rule), "state": c.to_state()}
            for c in self._lines + self._zones
        }
        return {
            "version": STATE_VERSION,
            "stream_id": self._stream_id,
            "last_seq": self._last_seq,
            "past_stream_ids": list(self._past_streams),
            "tracker": self.tracker.to_state(),
            "rules": rules,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], rules: Sequence[Rule] = (), params: TrackerParams | None = None
    ) -> CameraCounter:
        """Restore from ``to_state``. Rules and params come from the current config; a
        rule whose definition changed since the state was saved starts fresh."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise CountingStateError(f"counter state: expected version {STATE_VERSION}")
        counter = cls(rules, params)
        counter.tracker = ByteTracker.from_state(state.get("tracker"), params)
        stream_id, last_seq, past = (
            state.get("stream_id"),
            state.get("last_seq"),
            state.get("past_stream_ids"),
        )
        if not (stream_id is None or isinstance(stream_id, str)) or not (
            last_seq is None or _is_int(last_seq)
        ):
            raise CountingStateError("counter state: stream_id must be a string and last_seq an integer")
        if not isinstance(past, list) or not all(isinstance(s, str) for s in past):
            raise CountingStateError("counter state: past_stream_ids must be a list of strings")
        counter._stream_id, counter._last_seq, counter._past_streams = (
            stream_id,
            last_seq,
            past[-MAX_PAST_STREAMS:],
        )
        saved = state.get("rules")
        if not isinstance(saved, dict):
            raise CountingStateError("counter state: rules must be an object")
        counter._lines = [_restore(LineCounter, c.rule, saved) for c in counter._lines]
        counter._zones = [_restore(ZoneCounter, c.rule, saved) for c in counter._zones]
        return counter


@dataclass(frozen=True)
class _Frame:
    """The frame being applied, which every event of it carries."""

    stream_id: str
    seq: int
    capture_ts_ms: int

    def event(
        self,
        rule: str,
        direction: EventDirection,
        track_id: int,
        class_id: int,
        visit: int | None = None,
        dwell_ms: int | None = None,
    ) -> CountEvent:
        return CountEvent(
            event_id=event_id(self.stream_id, track_id, rule, direction, visit),
            rule=rule,
            rule_kind="line" if direction in ("in", "out") else "zone",
            direction=direction,
            class_id=class_id,
            track_id=track_id,
            capture_ts_ms=self.capture_ts_ms,
            seq=self.seq,
            stream_id=self.stream_id,
            dwell_ms=dwell_ms,
        )


def _restore(kind: Any, rule: Rule, saved: dict[str, Any]) -> Any:
    entry = saved.get(rule.name)
    if not isinstance(entry, dict) or entry.get("rule") != rule_fingerprint(rule):
        return kind(rule)
    return kind.from_state(rule, entry.get("state"))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_frame(seq: int, capture_ts_ms: int, stream_id: str) -> None:
    if not _is_int(seq) or seq < 0:
        raise ValueError(f"seq must be a non-negative integer, got {seq!r}")
    if not _is_int(capture_ts_ms):
        raise TypeError(f"capture_ts_ms must be an integer of epoch ms, got {capture_ts_ms!r}")
    if not isinstance(stream_id, str) or not stream_id:
        raise ValueError(f"stream_id must be a non-empty string, got {stream_id!r}")
