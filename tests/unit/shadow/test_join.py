"""Joining primary and shadow detections by frame, windows closing by watermark or end of stream."""

from __future__ import annotations

from pipeline.shadow.join import PRIMARY, SHADOW, Joiner

P, C = ("m", "1"), ("m", "2")


def det(model, seq: int, ts_ms: int, boxes=(), camera: str = "cam", inference_ms: float = 5.0, **extra) -> dict:
    return dict(camera_id=camera, stream_id="s", seq=seq, capture_ts_ms=ts_ms, model_name=model[0],
                model_version=model[1], inference_ms=inference_ms, end_of_stream=False,
                boxes=[dict(class_id=0, score=.9, x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for b in boxes]) | extra


BOX = [(.1, .1, .3, .5)]


def test_frames_join_in_either_order_and_a_window_closes_after_the_wait() -> None:
    j = Joiner(window_ms=1000, max_wait_ms=500, class_names=lambda m: ["person"])
    assert j.add(PRIMARY, det(P, 0, 100, BOX)) == []
    assert j.add(SHADOW, det(C, 0, 100, BOX)) == []       # joined, window [0, 1000) open
    assert j.add(SHADOW, det(C, 1, 200, BOX)) == []       # shadow first this time
    assert j.add(PRIMARY, det(P, 1, 200, BOX)) == []
    assert j.add(PRIMARY, det(P, 2, 1400, BOX)) == []     # watermark 1400: 1000 + 500 not passed
    (out,) = j.add(PRIMARY, det(P, 3, 1500, BOX))         # watermark 1500 closes [0, 1000)
    assert (out["window_start_ms"], out["window_end_ms"], out["frames_compared"]) == (0, 1000, 2)
    assert (out["primary_version"], out["candidate_version"]) == ("1", "2")
    assert out["classes"][0]["precision"] == out["classes"][0]["recall"] == 1.0
    assert j.stats["joined"] == 2


def test_unsampled_primary_frames_expire_without_a_comparison() -> None:
    j = Joiner(window_ms=1000, max_wait_ms=100)
    for seq in range(10):
        j.add(PRIMARY, det(P, seq, seq * 50))
    # watermark 450: frames captured before 350 (seq 0..6) waited long enough
    assert j.stats == {"joined": 0, "expired": 7, "late": 0} and j.flush() == []


def test_end_of_stream_on_both_sides_closes_every_window() -> None:
    j = Joiner(window_ms=10_000, max_wait_ms=5_000)
    j.add(PRIMARY, det(P, 0, 100))
    j.add(SHADOW, det(C, 0, 100))
    assert j.add(PRIMARY, det(P, 1, 200, end_of_stream=True)) == []
    (out,) = j.add(SHADOW, det(C, 1, 200, end_of_stream=True))
    assert out["frames_compared"] == 1 and out["classes"] == []


def test_count_difference_comes_from_the_count_function() -> None:
    counts = {(C, SHADOW): 2, (C, PRIMARY): 1}
    j = Joiner(window_ms=1000, max_wait_ms=0, count_events=lambda side, rec: counts[side])
    j.add(PRIMARY, det(P, 0, 0))
    j.add(SHADOW, det(C, 0, 0))
    (out,) = j.flush()
    assert out["count_diff"] == 1
