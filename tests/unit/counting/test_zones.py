from __future__ import annotations

import json

import pytest

from pipeline.counting.rules import ZoneRule
from pipeline.counting.zones import ZoneCounter

SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
INSIDE, OUTSIDE = (0.4, 0.4), (0.8, 0.4)


def _run(counter, tracks_factory, positions, step_ms=100, track_id=1, class_id=0):
    """Feed one track through positions at ``step_ms`` intervals; return (ts, event) pairs."""
    events = []
    for i, point in enumerate(positions):
        ts = 1_000 + i * step_ms
        events += [
            (ts, e) for e in counter.update(tracks_factory({track_id: point}, {track_id: class_id}), ts)
        ]
    return events


@pytest.mark.parametrize(
    ("min_frames", "positions", "expected"),
    [
        (2, [OUTSIDE, INSIDE, INSIDE, INSIDE, OUTSIDE, OUTSIDE], ["enter", "exit"]),  # a plain visit
        (2, [OUTSIDE, INSIDE, OUTSIDE, INSIDE, OUTSIDE], []),  # flicker on the edge: nothing
        (1, [OUTSIDE, INSIDE, OUTSIDE, INSIDE], ["enter", "exit", "enter"]),  # no debounce
        (2, [INSIDE, INSIDE], ["enter"]),  # first seen inside
        (2, [INSIDE, INSIDE, OUTSIDE, INSIDE, INSIDE], ["enter"]),  # one frame outside is not an exit
        (3, [OUTSIDE, INSIDE, INSIDE], []),  # not yet three inside
        (2, [OUTSIDE] * 4, []),  # never inside
    ],
)
def test_enter_exit_table(min_frames, positions, expected, mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE, min_frames=min_frames))
    assert [e.direction for _, e in _run(counter, mock_tracks, positions)] == expected


def test_dwell_runs_from_first_to_last_inside_observation(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE))
    # ts:          1000     1100    1200    1300    1400    1500     1600
    positions = [OUTSIDE, INSIDE, INSIDE, INSIDE, INSIDE, OUTSIDE, OUTSIDE]
    events = _run(counter, mock_tracks, positions)
    (enter_ts, enter), (exit_ts, leave) = events
    assert (enter_ts, enter.direction, enter.visit, enter.dwell_ms) == (1200, "enter", 1, None)
    assert (exit_ts, leave.direction, leave.visit, leave.dwell_ms) == (1600, "exit", 1, 300)


def test_dwell_uses_capture_time_not_frame_count(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE))
    events = _run(counter, mock_tracks, [INSIDE] * 4 + [OUTSIDE] * 2, step_ms=40)
    assert events[-1][1].dwell_ms == 120  # 4 frames at 25 fps


def test_revisits_are_numbered(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE, min_frames=1))
    events = _run(counter, mock_tracks, [INSIDE, OUTSIDE, INSIDE, OUTSIDE])
    assert [(e.direction, e.visit) for _, e in events] == [
        ("enter", 1),
        ("exit", 1),
        ("enter", 2),
        ("exit", 2),
    ]


def test_forget_exits_tracks_inside_and_evicts_all(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE))
    for ts in (0, 100, 200):
        counter.update(mock_tracks({1: INSIDE, 2: OUTSIDE, 3: INSIDE}, {1: 0, 2: 0, 3: 2}), ts)
    counter.update(mock_tracks({2: OUTSIDE}), 300)  # 1 and 3 go unseen, then the tracker drops them
    exits = counter.forget([1, 2, 3])
    assert [(e.track_id, e.class_id, e.direction, e.dwell_ms) for e in exits] == [
        (1, 0, "exit", 200),
        (3, 2, "exit", 200),
    ]
    assert len(counter) == 0
    assert counter.occupancy().total == 0


def test_occupancy_counts_inside_tracks_by_class(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE, classes=frozenset({0, 2, 7})))
    frame = mock_tracks(
        {1: INSIDE, 2: (0.3, 0.3), 3: OUTSIDE, 4: (0.5, 0.5), 5: INSIDE},
        {1: 0, 2: 2, 3: 2, 4: 2, 5: 1},  # track 5 is class 1: filtered out
    )
    counter.update(frame, 0)
    assert counter.occupancy().total == 0  # min_frames 2: nobody has entered yet
    counter.update(frame, 100)
    occupancy = counter.occupancy()
    assert occupancy.total == 3
    assert occupancy.by_class == {0: 1, 2: 2, 7: 0}


def test_occupancy_keeps_briefly_unseen_tracks(mock_tracks):
    counter = ZoneCounter(ZoneRule("bay", SQUARE))
    counter.update(mock_tracks({1: INSIDE}), 0)
    counter.update(mock_tracks({1: INSIDE}), 100)
    counter.update(mock_tracks({}), 200)  # occluded
    assert counter.occupancy().total == 1


def test_state_round_trip(mock_tracks):
    rule = ZoneRule("bay", SQUARE)
    counter = ZoneCounter(rule)
    counter.update(mock_tracks({1: OUTSIDE, 2: INSIDE}), 0)
    counter.update(mock_tracks({1: INSIDE, 2: INSIDE}), 100)
    restored = ZoneCounter.from_state(rule, json.loads(json.dumps(counter.to_state())))
    for ts, frame in [(200, {1: INSIDE, 2: OUTSIDE}), (300, {1: INSIDE, 2: OUTSIDE})]:
        assert restored.update(mock_tracks(frame), ts) == counter.update(mock_tracks(frame), ts)
    assert restored.occupancy() == counter.occupancy()
    assert restored.to_state() == counter.to_state()
