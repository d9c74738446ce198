from __future__ import annotations

import json

import pytest

from pipeline.counting.counter import CameraCounter, event_id
from pipeline.counting.exceptions import CountingStateError
from pipeline.counting.rules import LineRule, ZoneRule
from pipeline.detections import Detections
from pipeline.exceptions import ConfigError

from .conftest import box_at

GATE = LineRule("gate", (0.1, 0.5), (0.9, 0.5))  # "in" = top -> bottom
BAY = ZoneRule("bay", ((0.0, 0.555), (1.0, 0.555), (1.0, 1.0), (0.0, 1.0)))  # lower part of the frame
RULES = (GATE, BAY)
T0 = 1_700_000_000_000


def _walk_down(ts_ms, x=0.5, y0=0.3, speed_per_s=0.1):
    return Detections.from_arrays([box_at(x, y0 + speed_per_s * (ts_ms - T0) / 1000)], [0.9], [0])


def _feed(counter, frames, stream_id="s1"):
    return [counter.apply(seq, ts, dets, stream_id=stream_id) for seq, ts, dets in frames]


def _frames(n, start_seq=0, start_ts=T0, step_ms=100):
    return [(start_seq + i, start_ts + i * step_ms, _walk_down(start_ts + i * step_ms)) for i in range(n)]


def _events(results):
    return [e for r in results for e in r.events]


def test_crossing_and_zone_events_carry_the_frame_and_ids():
    counter = CameraCounter(RULES)
    events = _events(_feed(counter, _frames(40)))  # y goes 0.3 -> 0.69 at 0.1 per s
    crossing = next(e for e in events if e.rule == "gate")
    assert (crossing.rule_kind, crossing.direction, crossing.track_id, crossing.class_id) == (
        "line",
        "in",
        1,
        0,
    )
    assert crossing.capture_ts_ms == T0 + 2100  # first frame with y > 0.505
    assert crossing.seq == 21 and crossing.stream_id == "s1"
    assert crossing.event_id == "s1/1/gate/in"
    enter = next(e for e in events if e.rule == "bay")
    assert (enter.rule_kind, enter.direction, enter.event_id, enter.dwell_ms) == (
        "zone",
        "enter",
        "s1/1/bay/enter/1",
        None,
    )
    assert len(events) == 2


def test_occupancy_is_reported_every_frame_for_every_zone():
    counter = CameraCounter(RULES)
    results = _feed(counter, _frames(40))
    assert all(len(r.occupancy) == 1 and r.occupancy[0].rule == "bay" for r in results)
    assert results[0].occupancy[0].total == 0
    assert results[-1].occupancy[0].total == 1
    assert results[-1].occupancy[0].capture_ts_ms == results[-1].capture_ts_ms


def test_zone_exit_on_track_removal_has_dwell():
    counter = CameraCounter(RULES)
    _feed(counter, _frames(40))  # inside from ~2600 ms
    results = _feed(counter, [(40 + i, T0 + 4000 + i * 100, Detections.empty()) for i in range(20)])
    exits = [e for e in _events(results) if e.direction == "exit"]
    assert len(exits) == 1
    assert exits[0].dwell_ms == 3900 - 2600  # first to last inside sighting (y > 0.555 from 2600 ms)
    assert exits[0].capture_ts_ms == T0 + 5500  # the frame in which the 1500 ms buffer ran out
    assert results[-1].occupancy[0].total == 0


def test_removed_tracks_are_evicted_from_rule_state():
    counter = CameraCounter(RULES)
    _feed(counter, _frames(30))
    assert counter.to_state()["rules"]["gate"]["state"]["track_id"] == [1]
    _feed(counter, [(30 + i, T0 + 3000 + i * 100, Detections.empty()) for i in range(20)])
    state = counter.to_state()
    assert state["rules"]["gate"]["state"]["track_id"] == []
    assert state["rules"]["bay"]["state"]["track_id"] == []


def test_repeated_seq_is_ignored_and_changes_nothing():
    counter = CameraCounter(RULES)
    frames = _frames(25)
    _feed(counter, frames)
    before = counter.to_state()
    replayed = _feed(counter, frames[15:])  # at-least-once redelivery
    assert all(r.duplicate for r in replayed)
    assert _events(replayed) == [] and all(r.occupancy == () for r in replayed)
    assert counter.to_state() == before


def test_new_stream_id_resets_ordering_and_old_stream_stays_old():
    counter = CameraCounter(RULES)
    _feed(counter, _frames(10), stream_id="s1")
    restarted = _feed(counter, _frames(10, start_seq=0, start_ts=T0 + 1000), stream_id="s2")
    assert not any(r.duplicate for r in restarted)
    assert counter.stream_id == "s2" and counter.last_seq == 9
    late = _feed(counter, _frames(3, start_seq=10, start_ts=T0 + 900), stream_id="s1")
    assert all(r.duplicate for r in late)


def test_replay_from_saved_state_reproduces_event_ids():
    frames = _frames(40)
    counter = CameraCounter(RULES)
    _feed(counter, frames[:12])
    saved = json.dumps(counter.to_state())
    live = _events(_feed(counter, frames[12:]))
    # A worker restarts from the saved state and the broker re-delivers from seq 8.
    restored = CameraCounter.from_state(json.loads(saved), RULES)
    replayed = _events(_feed(restored, frames[8:]))
    assert [e.event_id for e in replayed] == [e.event_id for e in live]
    assert replayed == live
    assert restored.to_state() == counter.to_state()


def test_state_is_json_and_round_trips_exactly():
    counter = CameraCounter(RULES)
    _feed(counter, _frames(22))
    state = counter.to_state()
    assert json.loads(json.dumps(state)) == state
    assert CameraCounter.from_state(json.loads(json.dumps(state)), RULES).to_state() == state


def test_changed_rule_starts_fresh_and_unchanged_rule_keeps_state():
    counter = CameraCounter(RULES)
    _feed(counter, _frames(15))
    moved = LineRule("gate", (0.1, 0.6), (0.9, 0.6))
    restored = CameraCounter.from_state(json.loads(json.dumps(counter.to_state())), (moved, BAY))
    state = restored.to_state()
    assert state["rules"]["gate"]["state"]["track_id"] == []
    assert state["rules"]["bay"]["state"] == counter.to_state()["rules"]["bay"]["state"]


def test_from_state_refuses_other_versions():
    state = CameraCounter(RULES).to_state()
    state["version"] = 0
    with pytest.raises(CountingStateError):
        CameraCounter.from_state(state, RULES)


def test_rule_names_must_be_unique():
    with pytest.raises(ConfigError, match="gate"):
        CameraCounter((GATE, LineRule("gate", (0.1, 0.2), (0.9, 0.2))))


@pytest.mark.parametrize(
    ("seq", "ts", "stream_id", "error"),
    [
        (-1, T0, "s", ValueError),
        (1, 1.5, "s", TypeError),
        (1, T0, "", ValueError),
        (True, T0, "s", ValueError),
    ],
)
def test_broken_frame_contract_raises(seq, ts, stream_id, error):
    with pytest.raises(error):
        CameraCounter(RULES).apply(seq, ts, Detections.empty(), stream_id=stream_id)


def test_event_id_format():
    assert event_id("s1", 4, "gate", "out") == "s1/4/gate/out"
    assert event_id("s1", 4, "bay", "enter", 2) == "s1/4/bay/enter/2"
