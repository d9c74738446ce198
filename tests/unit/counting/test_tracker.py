from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from pipeline.counting.exceptions import CountingStateError
from pipeline.counting.params import TrackerParams
from pipeline.counting.tracker import ByteTracker
from pipeline.detections import Detections
from pipeline.exceptions import ConfigError

from .conftest import box_at, full_covariance

PERSON, CAR, TRUCK = 0, 2, 7


def _walker(x0, y0, vx_per_s, vy_per_s=0.0, w=0.04, h=0.12):
    """Box of an object moving at constant velocity, as a function of time in ms."""
    return lambda ts_ms: box_at(x0 + vx_per_s * ts_ms / 1000, y0 + vy_per_s * ts_ms / 1000, w, h)


def _frame(objects, ts_ms, scores=None, classes=None):
    """Detections of the objects visible at ``ts_ms`` (a list of walkers or None)."""
    visible = [i for i, o in enumerate(objects) if o is not None]
    return Detections.from_arrays(
        [objects[i](ts_ms) for i in visible],
        [0.9 if scores is None else scores[i] for i in visible],
        [PERSON if classes is None else classes[i] for i in visible],
    )


def _ids_by_object(tracker, objects, timestamps, hidden=lambda obj, ts: False, **kwargs):
    """Track ids the tracker gave each object (matched by the exact detection box)."""
    seen = {i: [] for i in range(len(objects))}
    for ts in timestamps:
        shown = [None if hidden(i, ts) else o for i, o in enumerate(objects)]
        dets = _frame(shown, ts, **kwargs)
        tracks = tracker.update(ts, dets).tracks
        for track_id, box in zip(tracks.track_ids, tracks.xyxy, strict=True):
            obj = next(i for i, o in enumerate(shown) if o is not None and np.allclose(o(ts), box, atol=1e-6))
            seen[obj].append(int(track_id))
    return seen


def _id_switches(ids):
    return sum(1 for a, b in zip(ids, ids[1:], strict=False) if a != b)


def test_single_object_keeps_one_id_and_is_confirmed_on_second_frame():
    tracker = ByteTracker()
    reports = [
        len(tracker.update(ts, _frame([_walker(0.2, 0.5, 0.1)], ts)).tracks) for ts in range(0, 3000, 100)
    ]
    assert reports[0] == 0  # min_hits_to_confirm = 2
    assert all(r == 1 for r in reports[1:])


@pytest.mark.parametrize(("min_hits", "first_reported"), [(1, 0), (2, 1), (3, 2)])
def test_min_hits_to_confirm(min_hits, first_reported):
    tracker = ByteTracker(TrackerParams(min_hits_to_confirm=min_hits))
    counts = [
        len(tracker.update(ts, _frame([_walker(0.2, 0.5, 0.1)], ts)).tracks) for ts in range(0, 500, 100)
    ]
    assert counts.index(1) == first_reported


@pytest.mark.parametrize(
    ("fps", "gap_frames", "keeps_id"),
    [
        (10, 8, True),  # 800 ms hidden < 1500 ms buffer
        (10, 20, False),  # 2000 ms hidden > buffer
        (25, 10, True),  # 10 missed frames at 25 fps = 400 ms: kept
        (5, 10, False),  # the same 10 frames at 5 fps = 2000 ms: dropped
    ],
)
def test_occlusion_buffer_is_measured_in_capture_time(fps, gap_frames, keeps_id):
    interval = 1000 // fps
    timestamps = [i * interval for i in range(60)]
    hidden_from = 20 * interval
    hidden_until = (20 + gap_frames) * interval
    tracker = ByteTracker()
    ids = _ids_by_object(
        tracker, [_walker(0.1, 0.5, 0.05)], timestamps, hidden=lambda i, ts: hidden_from <= ts < hidden_until
    )[0]
    assert (_id_switches(ids) == 0) == keeps_id


@pytest.mark.parametrize(
    ("buffer_ms", "gap_ms", "keeps_id"),
    [(300, 400, False), (500, 400, True), (3000, 2500, True), (3000, 3500, False)],
)
def test_lost_track_buffer_setting(buffer_ms, gap_ms, keeps_id):
    tracker = ByteTracker(TrackerParams(lost_track_buffer_ms=buffer_ms))
    timestamps = [ts for ts in range(0, 8000, 100) if not 2000 <= ts < 2000 + gap_ms]
    ids = _ids_by_object(tracker, [_walker(0.1, 0.5, 0.05)], timestamps)[0]
    assert (_id_switches(ids) == 0) == keeps_id


def test_dropped_track_is_reported_removed_once():
    tracker = ByteTracker()
    removed = []
    for ts in range(0, 5000, 100):
        objects = [_walker(0.1, 0.5, 0.05)] if ts < 1000 else []
        removed += tracker.update(ts, _frame(objects, ts)).removed_ids.tolist()
    assert removed == [1]


@pytest.mark.parametrize("fps", [5, 10, 25])
@pytest.mark.parametrize("occluded", [False, True])
def test_two_crossing_paths_keep_their_ids(fps, occluded):
    # Two people walk towards each other, pass with overlapping boxes, and (when
    # occluded) the one behind is not detected while they overlap.
    objects = [_walker(0.2, 0.60, 0.12), _walker(0.8, 0.63, -0.12)]
    timestamps = list(range(0, 5000, 1000 // fps))
    passing = (2000, 3000)  # their boxes overlap around t = 2.5 s
    hidden = (lambda i, ts: i == 1 and passing[0] <= ts < passing[1]) if occluded else (lambda i, ts: False)
    ids = _ids_by_object(ByteTracker(), objects, timestamps, hidden=hidden)
    assert _id_switches(ids[0]) == 0
    assert _id_switches(ids[1]) == 0
    assert ids[0][0] != ids[1][0]


def test_dropped_frames_and_uneven_intervals_keep_the_id():
    rng = np.random.default_rng(7)
    timestamps = np.cumsum(rng.integers(60, 140, size=80))  # ~10 fps with jitter
    timestamps = timestamps[rng.random(80) > 0.25]  # and a quarter of frames lost
    ids = _ids_by_object(ByteTracker(), [_walker(0.05, 0.5, 0.1)], [int(t) for t in timestamps])[0]
    assert _id_switches(ids) == 0
    assert len(ids) >= len(timestamps) - 1


def test_low_score_detections_continue_but_never_start_tracks():
    tracker = ByteTracker()
    walker = _walker(0.2, 0.5, 0.1)
    for ts in range(0, 500, 100):  # confident: confirmed as id 1
        tracker.update(ts, _frame([walker], ts))
    for ts in range(500, 1000, 100):  # occluded: the detector is unsure
        assert tracker.update(ts, _frame([walker], ts, scores=[0.3])).tracks.track_ids.tolist() == [1]
    stranger = ByteTracker()
    for ts in range(0, 1000, 100):
        assert len(stranger.update(ts, _frame([walker], ts, scores=[0.3])).tracks) == 0


def test_detections_below_low_threshold_are_ignored():
    tracker = ByteTracker()
    walker = _walker(0.2, 0.5, 0.1)
    for ts in range(0, 300, 100):
        tracker.update(ts, _frame([walker], ts))
    assert len(tracker.update(300, _frame([walker], 300, scores=[0.05])).tracks) == 0


def test_vehicle_class_flips_keep_the_track_and_its_majority_class():
    tracker = ByteTracker()
    walker = _walker(0.2, 0.5, 0.1, w=0.1, h=0.08)
    for i, ts in enumerate(range(0, 2000, 100)):
        tracks = tracker.update(ts, _frame([walker], ts, classes=[TRUCK if i % 3 == 2 else CAR])).tracks
        if i:
            assert tracks.track_ids.tolist() == [1]
            assert tracks.class_ids.tolist() == [CAR]


@pytest.mark.parametrize(("class_aware", "person_takes_car_id"), [(True, False), (False, True)])
def test_class_aware_association(class_aware, person_takes_car_id):
    # A car stops being detected; a person is detected exactly where it was.
    tracker = ByteTracker(TrackerParams(class_aware=class_aware))
    parked = _walker(0.5, 0.5, 0.0, w=0.1, h=0.08)
    for ts in range(0, 500, 100):
        tracker.update(ts, _frame([parked], ts, classes=[CAR]))
    ids = [
        tracker.update(ts, _frame([parked], ts, classes=[PERSON])).tracks.track_ids.tolist()
        for ts in (500, 600)
    ]
    assert (ids[-1] == [1]) == person_takes_car_id


def test_ids_are_dense_and_monotonic():
    tracker = ByteTracker()
    for ts in range(0, 300, 100):
        # A one-frame false positive at ts 0 never gets an id.
        objects = [_walker(0.2, 0.5, 0.1)] + ([_walker(0.7, 0.3, 0.0)] if ts == 0 else [])
        tracker.update(ts, _frame(objects, ts))
    tracks = tracker.update(300, _frame([_walker(0.2, 0.5, 0.1), _walker(0.6, 0.8, 0.0)], 300)).tracks
    tracks = tracker.update(400, _frame([_walker(0.2, 0.5, 0.1), _walker(0.6, 0.8, 0.0)], 400)).tracks
    assert tracks.track_ids.tolist() == [1, 2]


def test_clock_jumping_back_ends_all_tracks_but_not_the_id_sequence():
    tracker = ByteTracker()
    walker = _walker(0.2, 0.5, 0.05)
    for ts in range(100_000, 101_000, 100):
        tracker.update(ts, _frame([walker], ts))
    update = tracker.update(0, _frame([walker], 0))  # replayed file from an earlier time
    assert update.removed_ids.tolist() == [1]
    assert tracker.update(100, _frame([walker], 100)).tracks.track_ids.tolist() == [2]


def test_small_clock_step_back_is_no_time_passing():
    tracker = ByteTracker()
    walker = _walker(0.2, 0.5, 0.05)
    for ts in range(0, 1000, 100):
        tracker.update(ts, _frame([walker], ts))
    update = tracker.update(850, _frame([walker], 900))
    assert update.tracks.track_ids.tolist() == [1]
    assert tracker.last_ts_ms == 900


def _scene():
    """Three people with crossings, an occlusion and class noise, at 10 fps."""
    objects = [_walker(0.1, 0.5, 0.1), _walker(0.9, 0.52, -0.1), _walker(0.5, 0.2, 0.0, 0.08)]
    frames = []
    for ts in range(0, 6000, 100):
        shown = [o if not (i == 2 and 2000 <= ts < 2600) else None for i, o in enumerate(objects)]
        scores = [0.9, 0.35 if 3000 <= ts < 3300 else 0.8, 0.7]
        frames.append(
            (ts, _frame(shown, ts, scores=scores, classes=[PERSON, PERSON, CAR if ts % 700 else TRUCK]))
        )
    return frames


def _same_update(a, b):
    for name in ("track_ids", "xyxy", "class_ids", "scores"):
        np.testing.assert_array_equal(getattr(a.tracks, name), getattr(b.tracks, name))
    np.testing.assert_array_equal(a.removed_ids, b.removed_ids)


def test_same_inputs_give_same_outputs():
    first, second = ByteTracker(), ByteTracker()
    for ts, dets in _scene():
        _same_update(first.update(ts, dets), second.update(ts, dets))
    assert first.to_state() == second.to_state()


@pytest.mark.parametrize("split", [1, 17, 25, 40])
def test_state_round_trip_through_json_continues_identically(split):
    frames = _scene()
    original = ByteTracker()
    for ts, dets in frames[:split]:
        original.update(ts, dets)
    restored = ByteTracker.from_state(json.loads(json.dumps(original.to_state())))
    assert restored.to_state() == original.to_state()
    for ts, dets in frames[split:]:
        _same_update(original.update(ts, dets), restored.update(ts, dets))
    assert json.dumps(restored.to_state()) == json.dumps(original.to_state())


def test_a_version_1_state_is_restored_and_continues_identically():
    """Version 1 (before 2026-11-26) saved every column as plain lists, covariances as 8x8 matrices."""
    frames = _scene()
    original = ByteTracker()
    for ts, dets in frames[:25]:
        original.update(ts, dets)
    tracks = {name: values.tolist() for name, values in original._rows.items()}
    v1 = original.to_state() | {"version": 1,
                                "tracks": tracks | {"cov": full_covariance(original._rows["cov"]).tolist()}}
    restored = ByteTracker.from_state(json.loads(json.dumps(v1)))
    assert restored.to_state() == original.to_state()
    for ts, dets in frames[25:]:
        _same_update(original.update(ts, dets), restored.update(ts, dets))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s.update(version=99), "version"),
        (lambda s: s.update(next_id="1"), "next_id"),
        (lambda s: s["tracks"].pop("cov"), "cov"),
        (lambda s: s["tracks"].update(mean=[[0.0] * 7]), "mean"),
        (lambda s: s["tracks"].update(mean="AAAA"), "mean"),
        (lambda s: s["tracks"].update(status=[9]), "status"),
        (lambda s: s["tracks"].update(hits=[1, 2]), "lengths"),
        (lambda s: s.update(next_id=1), "next_id"),  # a live track already has id 1
    ],
)
def test_from_state_refuses_broken_state(mutate, match):
    tracker = ByteTracker()
    for ts in range(0, 300, 100):
        tracker.update(ts, _frame([_walker(0.2, 0.5, 0.1)], ts))
    state = json.loads(json.dumps(tracker.to_state()))
    mutate(state)
    with pytest.raises(CountingStateError, match=match):
        ByteTracker.from_state(state)


def test_broken_inputs_raise():
    tracker = ByteTracker()
    with pytest.raises(TypeError):
        tracker.update(1.5, Detections.empty())
    with pytest.raises(TypeError):
        tracker.update(0, [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="NaN"):
        tracker.update(0, Detections.from_arrays([[0, 0, np.nan, 1]], [0.9], [0]))


def test_empty_frames_are_fine():
    tracker = ByteTracker()
    update = tracker.update(0, Detections.empty())
    assert len(update.tracks) == 0 and len(update.removed_ids) == 0


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, does_not_raise()),
        ({"high_score_threshold": 1.5}, pytest.raises(ConfigError, match="high_score_threshold")),
        ({"low_score_threshold": 0.7}, pytest.raises(ConfigError, match="low_score_threshold <=")),
        ({"new_track_score_threshold": 0.4}, pytest.raises(ConfigError, match="new_track_score_threshold")),
        ({"match_iou_threshold": 0.0}, pytest.raises(ConfigError, match="IoU")),
        ({"lost_track_buffer_ms": -1}, pytest.raises(ConfigError, match="lost_track_buffer_ms")),
        ({"lost_track_buffer_ms": 1.5}, pytest.raises(ConfigError, match="lost_track_buffer_ms")),
        ({"min_hits_to_confirm": 0}, pytest.raises(ConfigError, match="min_hits_to_confirm")),
        ({"class_groups": ({2, 3}, {3, 4})}, pytest.raises(ConfigError, match="two groups")),
        ({"class_aware": "yes"}, pytest.raises(ConfigError, match="class_aware")),
    ],
)
def test_params_validation(kwargs, expectation):
    with expectation:
        TrackerParams(**kwargs)
